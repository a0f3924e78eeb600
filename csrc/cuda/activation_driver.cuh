// The CUDA driver for activations (see csrc/activations/activation.h for the
// contract and csrc/ops/activation_ops.h for the op layer above it).
//
// Elementwise ops: a grid-stride loop over 16-byte packs (4 floats, 8 halves,
// 2 doubles) when every pointer is 16-byte aligned, one element at a time
// otherwise, converting to fp32 (fp64 for double) for the math. Indices are
// 64-bit. Kernels run on the current stream, and every launch is checked.
//
// Channel ops (PReLU, Swish) view the tensor as (outer, channels, inner); the
// forward looks up each element's channel. The backward also sums the
// parameter's gradient without atomics, in an order fixed by the shape alone,
// so it is the same on every run:
//  * inner == 1 and several channels ((N, C) inputs): a thread owns a pack of
//    adjacent columns and a fixed slice of the rows (coalesced across the
//    warp), and writes its column sums to a (slices, C) buffer;
//  * otherwise (runs of `inner` elements share a parameter): blockIdx.y is
//    the channel, blockIdx.x one of a fixed number of slices of its
//    outer * inner elements; each block reduces in a fixed tree and writes
//    one partial sum per (channel, slice).
// A last kernel adds the slices in order.
//
// Softmax: one block per row when dim is the last one (block reductions for
// the max and the sum), one thread per column otherwise (coalesced across
// threads along the contiguous inner dimension).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/accumulation.h"
#include "cuda/reductions.cuh"
#include "ops/activation_ops.h"

namespace lossext {
namespace cuda {

constexpr int kThreads = 256;

// 16 bytes of scalar_t, loaded and stored as one 128-bit access.
template <typename scalar_t, int kVec>
struct alignas(sizeof(scalar_t) * kVec) Pack {
  scalar_t value[kVec];
};

template <typename scalar_t>
constexpr int pack_width() {
  return 16 / static_cast<int>(sizeof(scalar_t));
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Blocks for a grid-stride loop over `work` items: enough to fill the device, no more.
inline int64_t grid_size(int64_t work, int64_t per_block = kThreads) {
  const int64_t wanted = (work + per_block - 1) / per_block;
  const int64_t filled = int64_t(at::cuda::getCurrentDeviceProperties()->multiProcessorCount) * 8;
  return std::max<int64_t>(1, std::min(wanted, filled));
}

// ---- Elementwise. ----

// out[i] = fn(a[i]) or fn(a[i], b[i]) (b == nullptr for one input), kVec elements per access.
template <int kVec, typename scalar_t, typename Fn>
__global__ void map_kernel(int64_t n, scalar_t* __restrict__ out, Fn fn, const scalar_t* __restrict__ a,
                           const scalar_t* __restrict__ b) {
  using acc_t = accumulation_t<scalar_t>;
  using P = Pack<scalar_t, kVec>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t packs = n / kVec;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const P pa = reinterpret_cast<const P*>(a)[p];
    P pb;
    if (b != nullptr) pb = reinterpret_cast<const P*>(b)[p];
    P result;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const acc_t x = static_cast<acc_t>(pa.value[k]);
      result.value[k] = static_cast<scalar_t>(b != nullptr ? fn(x, static_cast<acc_t>(pb.value[k])) : fn(x, x));
    }
    reinterpret_cast<P*>(out)[p] = result;
  }
  // The last n % kVec elements.
  for (int64_t i = packs * kVec + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t x = static_cast<acc_t>(a[i]);
    out[i] = static_cast<scalar_t>(b != nullptr ? fn(x, static_cast<acc_t>(b[i])) : fn(x, x));
  }
}

// The activation's forward as a functor of (x, unused) and its backward as one of (g, saved).
template <class Act, typename acc_t, typename Params>
struct ForwardFn {
  Params params;
  __device__ acc_t operator()(acc_t x, acc_t) const { return Act::template forward<acc_t, acc_t>(x, params); }
};

template <class Act, typename acc_t, typename Params>
struct BackwardFn {
  Params params;
  __device__ acc_t operator()(acc_t grad, acc_t saved) const {
    return Act::template backward<acc_t, acc_t>(grad, saved, params);
  }
};

template <typename scalar_t, typename Fn>
void launch_map(int64_t n, scalar_t* out, const Fn& fn, const scalar_t* a, const scalar_t* b) {
  constexpr int kVec = pack_width<scalar_t>();
  const auto stream = at::cuda::getCurrentCUDAStream();
  const bool vectorised = aligned16(out) && aligned16(a) && (b == nullptr || aligned16(b));
  if (vectorised) {
    map_kernel<kVec><<<grid_size(n / kVec + 1), kThreads, 0, stream>>>(n, out, fn, a, b);
  } else {
    map_kernel<1><<<grid_size(n), kThreads, 0, stream>>>(n, out, fn, a, b);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// ---- Channel ops. ----

template <class Act, int kVec, typename scalar_t, typename acc_t>
__global__ void channel_forward_kernel(int64_t n, const scalar_t* __restrict__ x, const acc_t* __restrict__ parameter,
                                       DimLayout layout, scalar_t* __restrict__ y) {
  using P = Pack<scalar_t, kVec>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t packs = n / kVec;
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < packs; p += stride) {
    const P in = reinterpret_cast<const P*>(x)[p];
    P out;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int64_t channel = ((p * kVec + k) / layout.inner) % layout.size;
      out.value[k] = static_cast<scalar_t>(Act::forward(static_cast<acc_t>(in.value[k]), parameter[channel]));
    }
    reinterpret_cast<P*>(y)[p] = out;
  }
  for (int64_t i = packs * kVec + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t channel = (i / layout.inner) % layout.size;
    y[i] = static_cast<scalar_t>(Act::forward(static_cast<acc_t>(x[i]), parameter[channel]));
  }
}

// Runs of `inner` elements share the parameter: block (slice, channel).
template <class Act, int kVec, typename scalar_t, typename acc_t>
__global__ void channel_backward_runs_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                             const acc_t* __restrict__ parameter, DimLayout layout, int64_t slices,
                                             scalar_t* __restrict__ dx, acc_t* __restrict__ partial) {
  using P = Pack<scalar_t, kVec>;
  __shared__ acc_t shared[kThreads / kWarpSize];
  const int64_t per_channel = layout.outer * layout.inner;  // elements of one channel
  const int64_t packs_per_channel = per_channel / kVec;     // inner % kVec == 0 when kVec > 1
  const int64_t slice_packs = (packs_per_channel + slices - 1) / slices;
  for (int64_t channel = blockIdx.y; channel < layout.size; channel += gridDim.y) {
    const acc_t beta = parameter[channel];
    acc_t sum = 0;
    const int64_t begin = blockIdx.x * slice_packs;
    const int64_t end = std::min(packs_per_channel, begin + slice_packs);
    for (int64_t q = begin + threadIdx.x; q < end; q += blockDim.x) {
      const int64_t j = q * kVec;  // index within the channel's elements
      const int64_t o = j / layout.inner, k = j % layout.inner;
      const int64_t at = (o * layout.size + channel) * layout.inner + k;
      const P pg = *reinterpret_cast<const P*>(g + at);
      const P px = *reinterpret_cast<const P*>(x + at);
      P out;
#pragma unroll
      for (int lane = 0; lane < kVec; ++lane) {
        acc_t term;
        out.value[lane] = static_cast<scalar_t>(
            Act::backward(static_cast<acc_t>(pg.value[lane]), static_cast<acc_t>(px.value[lane]), beta, term));
        sum += term;
      }
      *reinterpret_cast<P*>(dx + at) = out;
    }
    const acc_t total = block_all_reduce(sum, Sum(), shared);
    if (partial != nullptr && threadIdx.x == 0) partial[channel * slices + blockIdx.x] = total;
  }
}

// (N, C) inputs: a thread owns kVec adjacent columns and a slice of the rows.
template <class Act, int kVec, typename scalar_t, typename acc_t>
__global__ void channel_backward_rows_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                             const acc_t* __restrict__ parameter, int64_t rows, int64_t columns,
                                             int64_t slices, scalar_t* __restrict__ dx, acc_t* __restrict__ partial) {
  using P = Pack<scalar_t, kVec>;
  const int64_t column_packs = columns / kVec;  // columns % kVec == 0 when kVec > 1
  const int64_t slice_rows = (rows + slices - 1) / slices;
  for (int64_t cp = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; cp < column_packs;
       cp += int64_t(gridDim.x) * blockDim.x) {
    for (int64_t slice = blockIdx.y; slice < slices; slice += gridDim.y) {
      acc_t beta[kVec], sum[kVec];
#pragma unroll
      for (int lane = 0; lane < kVec; ++lane) {
        beta[lane] = parameter[cp * kVec + lane];
        sum[lane] = 0;
      }
      const int64_t end = std::min(rows, (slice + 1) * slice_rows);
      for (int64_t row = slice * slice_rows; row < end; ++row) {
        const int64_t at = row * columns + cp * kVec;
        const P pg = *reinterpret_cast<const P*>(g + at);
        const P px = *reinterpret_cast<const P*>(x + at);
        P out;
#pragma unroll
        for (int lane = 0; lane < kVec; ++lane) {
          acc_t term;
          out.value[lane] = static_cast<scalar_t>(Act::backward(static_cast<acc_t>(pg.value[lane]),
                                                                static_cast<acc_t>(px.value[lane]), beta[lane], term));
          sum[lane] += term;
        }
        *reinterpret_cast<P*>(dx + at) = out;
      }
      if (partial != nullptr) {
#pragma unroll
        for (int lane = 0; lane < kVec; ++lane) partial[(cp * kVec + lane) * slices + slice] = sum[lane];
      }
    }
  }
}

// grad_parameter[c] = sum over s of partial[c * slices + s], in slice order.
template <typename acc_t>
__global__ void sum_slices_kernel(const acc_t* __restrict__ partial, int64_t channels, int64_t slices,
                                  acc_t* __restrict__ grad_parameter) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < channels; c += int64_t(gridDim.x) * blockDim.x) {
    acc_t total = 0;
    for (int64_t s = 0; s < slices; ++s) total += partial[c * slices + s];
    grad_parameter[c] = total;
  }
}

// ---- Softmax. ----

template <typename scalar_t>
__global__ void softmax_rows_kernel(const scalar_t* __restrict__ x, int64_t rows, int64_t D, scalar_t* __restrict__ y) {
  using acc_t = accumulation_t<scalar_t>;
  __shared__ acc_t shared[kThreads / kWarpSize];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const scalar_t* in = x + row * D;
    acc_t m = -infinity<acc_t>();
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) m = maximum(m, static_cast<acc_t>(in[j]));
    m = block_all_reduce(m, NanPropagatingMax(), shared);
    acc_t sum = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) sum += Softmax::shifted_exponential(static_cast<acc_t>(in[j]), m);
    const acc_t inverse_sum = acc_t(1) / block_all_reduce(sum, Sum(), shared);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      y[row * D + j] = static_cast<scalar_t>(Softmax::shifted_exponential(static_cast<acc_t>(in[j]), m) * inverse_sum);
    }
  }
}

template <typename scalar_t>
__global__ void softmax_columns_kernel(const scalar_t* __restrict__ x, DimLayout layout, scalar_t* __restrict__ y) {
  using acc_t = accumulation_t<scalar_t>;
  const int64_t columns = layout.outer * layout.inner;
  for (int64_t column = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; column < columns;
       column += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = column / layout.inner, i = column % layout.inner;
    const int64_t base = o * layout.size * layout.inner + i;
    acc_t m = -infinity<acc_t>();
    for (int64_t d = 0; d < layout.size; ++d) m = maximum(m, static_cast<acc_t>(x[base + d * layout.inner]));
    acc_t sum = 0;
    for (int64_t d = 0; d < layout.size; ++d) sum += Softmax::shifted_exponential(static_cast<acc_t>(x[base + d * layout.inner]), m);
    const acc_t inverse_sum = acc_t(1) / sum;
    for (int64_t d = 0; d < layout.size; ++d) {
      const int64_t at = base + d * layout.inner;
      y[at] = static_cast<scalar_t>(Softmax::shifted_exponential(static_cast<acc_t>(x[at]), m) * inverse_sum);
    }
  }
}

template <typename scalar_t>
__global__ void softmax_backward_rows_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ y,
                                             int64_t rows, int64_t D, scalar_t* __restrict__ dx) {
  using acc_t = accumulation_t<scalar_t>;
  __shared__ acc_t shared[kThreads / kWarpSize];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * D;
    acc_t dot = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) dot += static_cast<acc_t>(g[base + j]) * static_cast<acc_t>(y[base + j]);
    dot = block_all_reduce(dot, Sum(), shared);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      dx[base + j] = static_cast<scalar_t>(
          Softmax::input_gradient(static_cast<acc_t>(g[base + j]), static_cast<acc_t>(y[base + j]), dot));
    }
  }
}

template <typename scalar_t>
__global__ void softmax_backward_columns_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ y,
                                                DimLayout layout, scalar_t* __restrict__ dx) {
  using acc_t = accumulation_t<scalar_t>;
  const int64_t columns = layout.outer * layout.inner;
  for (int64_t column = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; column < columns;
       column += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = column / layout.inner, i = column % layout.inner;
    const int64_t base = o * layout.size * layout.inner + i;
    acc_t dot = 0;
    for (int64_t d = 0; d < layout.size; ++d) {
      dot += static_cast<acc_t>(g[base + d * layout.inner]) * static_cast<acc_t>(y[base + d * layout.inner]);
    }
    for (int64_t d = 0; d < layout.size; ++d) {
      const int64_t at = base + d * layout.inner;
      dx[at] = static_cast<scalar_t>(Softmax::input_gradient(static_cast<acc_t>(g[at]), static_cast<acc_t>(y[at]), dot));
    }
  }
}

struct CudaActivationDriver {
  template <class Act, class MakeParams>
  static void map_forward(const at::Tensor& input, at::Tensor& output, const MakeParams& make_params) {
    const c10::cuda::CUDAGuard guard(input.device());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_activation_cuda", [&] {
      using acc_t = accumulation_t<scalar_t>;
      using Params = decltype(make_params(acc_t{}));
      const ForwardFn<Act, acc_t, Params> fn{make_params(acc_t{})};
      launch_map(input.numel(), output.data_ptr<scalar_t>(), fn, input.const_data_ptr<scalar_t>(),
                 static_cast<const scalar_t*>(nullptr));
    });
  }

  template <class Act, class MakeParams>
  static void map_backward(const at::Tensor& grad_output, const at::Tensor& saved, at::Tensor& grad_input,
                           const MakeParams& make_params) {
    const c10::cuda::CUDAGuard guard(saved.device());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, saved.scalar_type(), "lossext_activation_cuda", [&] {
      using acc_t = accumulation_t<scalar_t>;
      using Params = decltype(make_params(acc_t{}));
      const BackwardFn<Act, acc_t, Params> fn{make_params(acc_t{})};
      launch_map(saved.numel(), grad_input.data_ptr<scalar_t>(), fn, grad_output.const_data_ptr<scalar_t>(),
                 saved.const_data_ptr<scalar_t>());
    });
  }

  template <class Act>
  static void channel_forward(const at::Tensor& input, const at::Tensor& parameter, const DimLayout& layout,
                              at::Tensor& output) {
    const c10::cuda::CUDAGuard guard(input.device());
    const auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_channel_cuda", [&] {
      using acc_t = accumulation_t<scalar_t>;
      constexpr int kVec = pack_width<scalar_t>();
      const int64_t n = input.numel();
      const scalar_t* x = input.const_data_ptr<scalar_t>();
      scalar_t* y = output.data_ptr<scalar_t>();
      const acc_t* p = parameter.const_data_ptr<acc_t>();
      if (aligned16(x) && aligned16(y)) {
        channel_forward_kernel<Act, kVec><<<grid_size(n / kVec + 1), kThreads, 0, stream>>>(n, x, p, layout, y);
      } else {
        channel_forward_kernel<Act, 1><<<grid_size(n), kThreads, 0, stream>>>(n, x, p, layout, y);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  template <class Act>
  static void channel_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& parameter,
                               const DimLayout& layout, at::Tensor& grad_input, at::Tensor& grad_parameter) {
    const c10::cuda::CUDAGuard guard(input.device());
    const auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_channel_cuda", [&] {
      using acc_t = accumulation_t<scalar_t>;
      constexpr int kVec = pack_width<scalar_t>();
      const scalar_t* g = grad_output.const_data_ptr<scalar_t>();
      const scalar_t* x = input.const_data_ptr<scalar_t>();
      const acc_t* p = parameter.const_data_ptr<acc_t>();
      scalar_t* dx = grad_input.data_ptr<scalar_t>();
      const bool aligned = aligned16(g) && aligned16(x) && aligned16(dx);
      const int64_t C = layout.size;
      // Slices per channel (or column), from the shape alone: about 64 KiB of
      // elements each, at most 1024.
      const int64_t per_channel = layout.outer * layout.inner;
      const int64_t slices = std::min<int64_t>(1024, std::max<int64_t>(1, per_channel / (int64_t(1) << 14)));
      at::Tensor partial;
      if (grad_parameter.defined()) partial = at::empty({C * slices}, parameter.options());
      acc_t* partial_ptr = partial.defined() ? partial.data_ptr<acc_t>() : nullptr;
      const bool along_rows = layout.inner == 1 && C > 1;
      if (along_rows) {
        const dim3 grid(static_cast<unsigned>(std::min<int64_t>((C + kThreads - 1) / kThreads, 65535)),
                        static_cast<unsigned>(std::min<int64_t>(slices, 65535)));
        if (aligned && C % kVec == 0) {
          const dim3 packed(static_cast<unsigned>(std::min<int64_t>((C / kVec + kThreads - 1) / kThreads, 65535)),
                            grid.y);
          channel_backward_rows_kernel<Act, kVec><<<packed, kThreads, 0, stream>>>(g, x, p, layout.outer, C, slices,
                                                                                   dx, partial_ptr);
        } else {
          channel_backward_rows_kernel<Act, 1><<<grid, kThreads, 0, stream>>>(g, x, p, layout.outer, C, slices, dx,
                                                                              partial_ptr);
        }
      } else {
        const dim3 grid(static_cast<unsigned>(slices), static_cast<unsigned>(std::min<int64_t>(C, 65535)));
        if (aligned && layout.inner % kVec == 0) {
          channel_backward_runs_kernel<Act, kVec><<<grid, kThreads, 0, stream>>>(g, x, p, layout, slices, dx,
                                                                                 partial_ptr);
        } else {
          channel_backward_runs_kernel<Act, 1><<<grid, kThreads, 0, stream>>>(g, x, p, layout, slices, dx,
                                                                              partial_ptr);
        }
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (partial.defined()) {
        sum_slices_kernel<<<grid_size(C), kThreads, 0, stream>>>(partial_ptr, C, slices,
                                                                 grad_parameter.data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }

  static void softmax_forward(const at::Tensor& input, const DimLayout& layout, at::Tensor& output) {
    const c10::cuda::CUDAGuard guard(input.device());
    const auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_softmax_cuda", [&] {
      const scalar_t* x = input.const_data_ptr<scalar_t>();
      scalar_t* y = output.data_ptr<scalar_t>();
      if (layout.inner == 1) {
        softmax_rows_kernel<<<grid_size(layout.outer, 1), kThreads, 0, stream>>>(x, layout.outer, layout.size, y);
      } else {
        softmax_columns_kernel<<<grid_size(layout.outer * layout.inner), kThreads, 0, stream>>>(x, layout, y);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  static void softmax_backward(const at::Tensor& grad_output, const at::Tensor& output, const DimLayout& layout,
                               at::Tensor& grad_input) {
    const c10::cuda::CUDAGuard guard(output.device());
    const auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, output.scalar_type(), "lossext_softmax_cuda", [&] {
      const scalar_t* g = grad_output.const_data_ptr<scalar_t>();
      const scalar_t* y = output.const_data_ptr<scalar_t>();
      scalar_t* dx = grad_input.data_ptr<scalar_t>();
      if (layout.inner == 1) {
        softmax_backward_rows_kernel<<<grid_size(layout.outer, 1), kThreads, 0, stream>>>(g, y, layout.outer,
                                                                                          layout.size, dx);
      } else {
        softmax_backward_columns_kernel<<<grid_size(layout.outer * layout.inner), kThreads, 0, stream>>>(g, y, layout,
                                                                                                        dx);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
};

}  // namespace cuda
}  // namespace lossext
