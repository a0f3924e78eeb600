// The CUDA driver for row losses (see csrc/losses/row_loss.h for the contract
// and csrc/cpu/row_loss_driver.h for the reference semantics; README.md in this
// directory for the design).
//
// Each row is handled by one group of threads: a warp when the row has at most
// kMaxWarpPerRowClasses classes (several rows per block), a whole block
// otherwise. Pass 1 reads the row once and gathers every statistic the loss
// needs, the softmax ones "online" (a running max with the sums rescaled when
// it grows); the group combines its threads' partial statistics, every thread
// evaluates the loss's value and gradient coefficients from the combined
// statistics, and pass 2 reads the row again (mostly from L2) and writes the
// gradient once, in the input's dtype. (A kScaledSoftmax loss, whose softmax
// scale depends on pass 1's statistics, reads the row once more in between,
// for its exp sums.) Accumulation is in float (double for
// double inputs), offsets are 64-bit, and nothing synchronises with the host:
// the reduction's denominator is read from device memory inside the kernel.
// The gradient may be written over the logits (<loss>_forward_out): every
// element is read and written by the same thread, and the group's barrier
// orders pass 1's reads before pass 2's writes. The threads' partial
// statistics and their combination are csrc/losses/row_partial.h's, the
// per-row finishing step (value, coefficients, which gradient an element
// takes) csrc/losses/row_finish.h's, shared with the CPU driver.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/macros/Macros.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "common/accumulation.h"
#include "common/scalar_math.h"
#include "cuda/reductions.cuh"
#include "losses/row_finish.h"
#include "losses/row_loss.h"
#include "losses/row_partial.h"
#include "ops/row_loss_op.h"

namespace lossext {
namespace cuda {

// Rows up to this many classes take one warp each (at most 32 elements per
// lane); longer rows take a whole block so the row's reads are spread over
// more loads in flight.
constexpr int64_t kMaxWarpPerRowClasses = 1024;
constexpr int kWarpsPerRowBlock = 4;  // rows per block of the warp-per-row kernel
constexpr int kMaxBlockThreads = 512;
// Vector loads each thread issues before consuming any, so that a warp keeps
// kLoadUnroll * 512 bytes of the row in flight.
constexpr int kLoadUnroll = 4;
constexpr int64_t kMaxGridBlocks = std::numeric_limits<int32_t>::max();

// Threads of the block-per-row kernel for a row of `classes` elements: about
// 8 to 32 elements per thread, in blocks small enough that several stay
// resident on one SM.
inline int block_threads_for(int64_t classes) {
  if (classes <= 4096) return 128;
  if (classes <= 16384) return 256;
  return kMaxBlockThreads;
}

// The threads that share one row as launch_rows maps it: a warp up to
// kMaxWarpPerRowClasses classes, else a block of block_threads_for(classes)
// (the host simulation asks the same function).
inline int row_group_threads(int64_t classes) {
  return classes <= kMaxWarpPerRowClasses ? kWarpSize : block_threads_for(classes);
}

// K consecutive elements of a row. Aligned to its size so a Chunk of 16 bytes
// is one 128-bit load or store.
template <typename T, int K>
struct alignas(sizeof(T) * K) Chunk {
  static constexpr int kSize = K;
  T v[K];
};

// Calls visit(j, logits) for every element of one row, logits a
// Chunk<acc_t, K> holding o_j ... o_{j+K-1}; threads rank = 0 .. size-1 of the
// row's group share the work. With kVec > 1 the row splits into a head up to
// the first 16-byte boundary, a body of kVec-element vectors (one 128-bit load
// each, K = kVec) and a tail (K = 1 in head and tail); with kVec == 1 every
// element is its own chunk. Consecutive threads take consecutive chunks, so
// each load instruction of a warp reads contiguous memory.
template <int kVec, typename acc_t, typename scalar_t, typename Visit>
LOSSEXT_HOST_DEVICE void for_each_chunk(const scalar_t* row, int64_t classes, int rank, int size, Visit&& visit) {
  using Vector = Chunk<scalar_t, kVec>;
  const int64_t misalignment = static_cast<int64_t>((reinterpret_cast<uintptr_t>(row) / sizeof(scalar_t)) % kVec);
  const int64_t head = std::min<int64_t>(classes, (kVec - misalignment) % kVec);
  const int64_t vectors = (classes - head) / kVec;
  const int64_t tail_begin = head + vectors * kVec;

  for (int64_t j = rank; j < head; j += size) {
    visit(j, Chunk<acc_t, 1>{{static_cast<acc_t>(row[j])}});
  }
  const Vector* body = reinterpret_cast<const Vector*>(row + head);
  for (int64_t first = rank; first < vectors; first += static_cast<int64_t>(size) * kLoadUnroll) {
    Vector loaded[kLoadUnroll];
#pragma unroll
    for (int u = 0; u < kLoadUnroll; ++u) {
      const int64_t v = first + static_cast<int64_t>(u) * size;
      if (v < vectors) loaded[u] = body[v];
    }
#pragma unroll
    for (int u = 0; u < kLoadUnroll; ++u) {
      const int64_t v = first + static_cast<int64_t>(u) * size;
      if (v < vectors) {
        Chunk<acc_t, kVec> logits;
#pragma unroll
        for (int k = 0; k < kVec; ++k) logits.v[k] = static_cast<acc_t>(loaded[u].v[k]);
        visit(head + v * kVec, logits);
      }
    }
  }
  for (int64_t j = tail_begin + rank; j < classes; j += size) {
    visit(j, Chunk<acc_t, 1>{{static_cast<acc_t>(row[j])}});
  }
}

// The class weights w_j ... w_{j+K-1} of a chunk (all ones without weights).
template <int K, typename acc_t>
LOSSEXT_HOST_DEVICE Chunk<acc_t, K> load_weights(const acc_t* weight, int64_t j) {
  Chunk<acc_t, K> w;
#pragma unroll
  for (int k = 0; k < K; ++k) w.v[k] = weight ? weight[j + k] : acc_t(1);
  return w;
}

// The partial of lane (this lane ^ lane_mask), for the warp's butterfly: the
// fields Partial::kNeeds asks for (row_partial.h), the others left as they are.
template <class Partial>
__device__ __forceinline__ Partial shuffle_xor(const Partial& mine, int lane_mask) {
  constexpr unsigned kAllLanes = 0xffffffffu;
  Partial p = mine;
  if constexpr (Partial::kTracksMax) p.max_logit = __shfl_xor_sync(kAllLanes, mine.max_logit, lane_mask);
  if constexpr (Partial::kScaled) p.min_logit = __shfl_xor_sync(kAllLanes, mine.min_logit, lane_mask);
#pragma unroll
  for (int k = 0; k < Partial::kNumScales; ++k) {
    if constexpr (Partial::kSoftmaxSums) p.sum_exp[k] = __shfl_xor_sync(kAllLanes, mine.sum_exp[k], lane_mask);
    if constexpr (Partial::kSquaredSum) {
      p.sum_exp_squared[k] = __shfl_xor_sync(kAllLanes, mine.sum_exp_squared[k], lane_mask);
    }
    if constexpr (Partial::kExpWeighted) {
      p.exp_weighted_sum[k] = __shfl_xor_sync(kAllLanes, mine.exp_weighted_sum[k], lane_mask);
    }
  }
  if constexpr (Partial::kSmoothing) {
    p.weighted_logit_sum = __shfl_xor_sync(kAllLanes, mine.weighted_logit_sum, lane_mask);
    p.weight_total = __shfl_xor_sync(kAllLanes, mine.weight_total, lane_mask);
  }
  if constexpr (Partial::kElements) p.element_sum = __shfl_xor_sync(kAllLanes, mine.element_sum, lane_mask);
  if constexpr (Partial::kOther) p.max_other_logit = __shfl_xor_sync(kAllLanes, mine.max_other_logit, lane_mask);
  if constexpr (Partial::kOtherIndex) {
    p.max_other_index = __shfl_xor_sync(kAllLanes, mine.max_other_index, lane_mask);
  }
  return p;
}

// How cuda/reductions.cuh combines and exchanges threads' partials of a row:
// combine() needs the logit scales the partials' exp sums are for (row_partial.h).
template <class Scales>
struct CombinePartials {
  const Scales& scales;
  template <class Partial>
  __device__ __forceinline__ Partial operator()(const Partial& a, const Partial& b) const {
    return Partial::combine(a, b, scales);
  }
};
struct ShufflePartials {
  template <class Partial>
  __device__ __forceinline__ Partial operator()(const Partial& p, int lane_mask) const {
    return shuffle_xor(p, lane_mask);
  }
};

// A warp working on one row.
struct WarpGroup {
  int rank;  // lane
  static constexpr int size = kWarpSize;

  template <class Partial, class Scales>
  __device__ __forceinline__ Partial all_reduce(const Partial& p, const Scales& scales) const {
    const Partial total = warp_all_reduce(p, CombinePartials<Scales>{scales}, ShufflePartials());
    __syncwarp();  // the row's reads happen before any lane writes its gradient (which may alias it)
    return total;
  }
};

// A block working on one row. all_reduce must be reached by every thread;
// its barriers order the row's reads before any thread writes its gradient
// (which may alias it).
template <class Partial>
struct BlockGroup {
  int rank;  // threadIdx.x
  int size;  // blockDim.x, a multiple of the warp size
  Partial* warp_partials;  // shared, one per warp

  template <class Scales>
  __device__ __forceinline__ Partial all_reduce(const Partial& p, const Scales& scales) const {
    return block_all_reduce(p, CombinePartials<Scales>{scales}, warp_partials, ShufflePartials());
  }
};

// Everything one launch reads and writes.
template <typename scalar_t, typename acc_t>
struct RowLossArgs {
  using scalar_type = scalar_t;
  using accumulation_type = acc_t;
  const scalar_t* input;
  int64_t input_row_stride;
  const int64_t* target;              // class indices, or nullptr for dense losses
  const acc_t* class_weight;          // (C,), or nullptr
  const acc_t* class_weight_total;    // device scalar sum_j w_j, or nullptr (C without weights;
                                      // dense rows sum their own)
  const acc_t* dense_coefficients;    // (N, C) for dense losses, else nullptr
  const acc_t* target_weight_sum;     // device scalar, ReductionInfo::target_weight_sum
  const acc_t* upstream;              // gradient of the output: 1 value or N values; nullptr means 1
  int64_t upstream_stride;            // 0 (one value) or 1 (per row)
  acc_t* row_values;                  // (N,)
  scalar_t* grad_input;               // (N, C) contiguous, or nullptr
  bool vectorised_gradient;           // every gradient row has its input row's 16-byte alignment
  const acc_t* tensor_params;         // the loss's learnable scalars (device memory), or nullptr
  acc_t* row_param_grads;             // (N, kNumTensorParams), or nullptr
  int64_t rows;
  int64_t classes;
  int64_t ignore_index;
  Reduction reduction;
  acc_t logit_softcap;                // c of kLogitSoftcap (row_loss.h), 0 for none
};

// The logit as the loss sees it (row_loss.h, kLogitSoftcap): c tanh(o / c)
// for a capped loss with c > 0, o otherwise. One scalar function for every
// read of a logit (the target's too), so that o'_t - max_j o'_j is exactly 0
// where the target is the max.
template <class Loss, typename acc_t>
LOSSEXT_HOST_DEVICE acc_t loss_logit(acc_t o, acc_t cap) {
  if constexpr ((Loss::kNeeds & kLogitSoftcap) != 0) {
    if (cap > acc_t(0)) return cap * hyperbolic_tangent(o / cap);
  }
  return o;
}

// z_j of element j (row_loss.h): e_j = exp(s (o_j - m)) for softmax losses
// (s = 1 but for kScaledSoftmax, whose m is its scale's reference and whose
// -inf logits have e = 0, row_partial.h; plus exp_shift for a loss that folds
// its gradient scale into the exponent, row_finish.h), o_j otherwise.
template <class Loss, typename acc_t>
LOSSEXT_HOST_DEVICE acc_t element_z(acc_t o, const RowStats<acc_t>& s, acc_t exp_shift) {
  constexpr unsigned kNeeds = Loss::kNeeds;
  if constexpr ((kNeeds & kScaledSoftmax) != 0) {
    return scaled_exponential(o, s.logit_scale, s.max_logit);
  } else if constexpr ((kNeeds & kSoftmax) != 0) {
    return fast_exponential(o - s.max_logit + exp_shift);
  } else {
    return o;
  }
}

// What every thread of a row's group knows about the row before pass 1.
template <typename scalar_t, typename acc_t>
struct RowContext {
  int64_t row;
  const scalar_t* input;
  scalar_t* grad;        // nullptr without gradient
  const acc_t* weight;   // the class weights, the dense coefficient row, or nullptr (all ones)
  int64_t target;        // 0 for dense rows, which have none: max-other then skips class 0, as in the CPU driver
  acc_t target_logit;    // o_t, read before pass 2 can overwrite it (the gradient may alias the logits)
  bool ignored;
};

// The per-row phases below are host-device so that a host simulation of a
// group (tests/cuda_simulation/) runs the same code as the kernels; run_row
// puts them together on the device.

template <class Loss, typename scalar_t, typename acc_t>
LOSSEXT_HOST_DEVICE RowContext<scalar_t, acc_t> open_row(int64_t row, const RowLossArgs<scalar_t, acc_t>& a) {
  constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
  RowContext<scalar_t, acc_t> r;
  r.row = row;
  r.input = a.input + row * a.input_row_stride;
  r.grad = a.grad_input ? a.grad_input + row * a.classes : nullptr;
  r.weight = kDense ? a.dense_coefficients + row * a.classes : a.class_weight;
  r.target = kDense ? 0 : a.target[row];
  r.ignored = !kDense && r.target == a.ignore_index;
  r.target_logit = acc_t(0);
  if (!kDense && !r.ignored) {
    CUDA_KERNEL_ASSERT(r.target >= 0 && r.target < a.classes);
    r.target_logit = loss_logit<Loss>(static_cast<acc_t>(r.input[r.target]), a.logit_softcap);
  }
  return r;
}

// Ignored rows contribute nothing and get a zero gradient (F.nll_loss); their
// row_param_grads stay as the op allocated them, zero.
template <typename scalar_t, typename acc_t>
LOSSEXT_HOST_DEVICE void clear_ignored_row(const RowContext<scalar_t, acc_t>& r,
                                           const RowLossArgs<scalar_t, acc_t>& a, int rank, int size) {
  if (rank == 0) a.row_values[r.row] = acc_t(0);
  if (r.grad) {
    for (int64_t j = rank; j < a.classes; j += size) r.grad[j] = scalar_t(0);
  }
}

// A pass over the row for thread `rank` of `size`: its share of what kGather
// gathers, added to `partial`, with the exp sums for the logit scales `scales`.
template <class Loss, Gather kGather, typename scalar_t, typename acc_t, int kScales>
LOSSEXT_HOST_DEVICE RowPartial<Loss, acc_t, kScales> gather_row_partial(
    const RowContext<scalar_t, acc_t>& r, const RowLossArgs<scalar_t, acc_t>& a, const typename Loss::Params& params,
    int rank, int size, RowPartial<Loss, acc_t, kScales> partial, const LogitScales<acc_t, kScales>& scales) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  for_each_chunk<kVec, acc_t>(r.input, a.classes, rank, size, [&](int64_t j, auto logits) {
    constexpr int K = std::decay_t<decltype(logits)>::kSize;
#pragma unroll
    for (int k = 0; k < K; ++k) logits.v[k] = loss_logit<Loss>(logits.v[k], a.logit_softcap);
    partial.template add<kGather, K>(j, logits.v, load_weights<K>(r.weight, j).v, scales, r.target, params);
  });
  return partial;
}

// A kScaledSoftmax row after its first pass (Gather::kWithoutExpSums, its
// total `first`): fills the statistics that need no exponential, chooses the
// row's logit scale and its reference (row_partial.h), and returns the empty
// partial a thread's exp-sum pass (Gather::kExpSums) starts from.
template <class Loss, typename acc_t>
LOSSEXT_HOST_DEVICE RowPartial<Loss, acc_t> choose_row_scale(const RowPartial<Loss, acc_t>& first,
                                                             RowStats<acc_t>& s, const typename Loss::Params& params) {
  first.fill_statistics(s);
  choose_logit_scale<Loss>(s, params, first.min_logit);
  return RowPartial<Loss, acc_t>::empty(first.max_logit, first.min_logit);
}

// The statistics that come from the row's context rather than a pass over it.
template <class Loss, typename scalar_t, typename acc_t>
LOSSEXT_HOST_DEVICE RowStats<acc_t> context_statistics(const RowContext<scalar_t, acc_t>& r,
                                                       const RowLossArgs<scalar_t, acc_t>& a) {
  constexpr unsigned kNeeds = Loss::kNeeds;
  RowStats<acc_t> s;
  s.num_classes = a.classes;
  s.tensor_params = a.tensor_params;
  if constexpr ((kNeeds & kDenseTarget) == 0) {
    s.target_logit = r.target_logit;
    s.target_weight = r.weight ? r.weight[r.target] : acc_t(1);
    s.class_weight_total = a.class_weight_total ? *a.class_weight_total : static_cast<acc_t>(a.classes);
  } else if constexpr ((kNeeds & kSmoothingSum) == 0) {
    // As the CPU driver, which sums a dense row's coefficients only for kSmoothingSum.
    s.class_weight_total = static_cast<acc_t>(a.classes);
  }
  return s;
}

// From the row's statistics: the row's value (thread 0 writes it, and the
// row's tensor-param derivatives) and pass 2, thread `rank`'s share of the
// gradient, written once in the input's dtype. For a block of a row's
// classes (row_statistics.cu), first_class is the class of its first column
// and r.target the target's column (-1 when it is in another block).
template <class Loss, typename scalar_t, typename acc_t>
LOSSEXT_HOST_DEVICE void finish_row(const RowContext<scalar_t, acc_t>& r, const RowStats<acc_t>& s,
                                    const RowLossArgs<scalar_t, acc_t>& a, const typename Loss::Params& params,
                                    int rank, int size, int64_t first_class = 0) {
  constexpr int kTensorParams = TensorParamCount<Loss>::value;
  constexpr int kVec = 16 / sizeof(scalar_t);
  ReductionInfo<acc_t> reduction;
  reduction.reduction = a.reduction;
  reduction.target_weight_sum = *a.target_weight_sum;
  reduction.total_rows = a.rows;

  if (rank == 0) a.row_values[r.row] = Loss::value(s, params, reduction);
  if (!r.grad) return;

  const acc_t upstream = a.upstream ? a.upstream[r.row * a.upstream_stride] : acc_t(1);
  acc_t* row_param_grads = rank == 0 && a.row_param_grads ? a.row_param_grads + r.row * kTensorParams : nullptr;
  RowGradient<Loss, acc_t> g = row_gradient<Loss>(s, params, reduction, upstream, row_param_grads);
  if (g.special_index >= 0) g.special_index -= first_class;  // its column, outside [0, classes) if elsewhere
  auto write_gradient = [&](int64_t j, const auto& logits) {
    constexpr int K = std::decay_t<decltype(logits)>::kSize;
    const Chunk<acc_t, K> w = load_weights<K>(r.weight, j);
    Chunk<scalar_t, K> out;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const acc_t o = loss_logit<Loss>(logits.v[k], a.logit_softcap);
      const acc_t z = element_z<Loss>(o, s, g.exp_shift);
      acc_t gradient = gradient_at<Loss>(j + k, z, w.v[k], r.target, g);
      // A capped loss's gradient is taken through the cap: times do'/do = 1 - (o'/c)^2.
      if constexpr ((Loss::kNeeds & kLogitSoftcap) != 0) gradient *= capped_logit_slope(o, a.logit_softcap);
      out.v[k] = static_cast<scalar_t>(gradient);
    }
    *reinterpret_cast<Chunk<scalar_t, K>*>(r.grad + j) = out;
  };
  if (a.vectorised_gradient) {
    for_each_chunk<kVec, acc_t>(r.input, a.classes, rank, size, write_gradient);
  } else {
    for_each_chunk<1, acc_t>(r.input, a.classes, rank, size, write_gradient);
  }
}

// One row, by the threads of `group` (a warp or a block; all of them must call
// this with the same row). tests/cuda_simulation/simulated_driver.cu replays
// these steps on the host.
template <class Loss, typename scalar_t, typename acc_t, class Group>
__device__ __forceinline__ void run_row(int64_t row, const RowLossArgs<scalar_t, acc_t>& a,
                                        const typename Loss::Params& params, const Group& group) {
  using Partial = RowPartial<Loss, acc_t>;
  const RowContext<scalar_t, acc_t> r = open_row<Loss>(row, a);
  if (r.ignored) {
    clear_ignored_row(r, a, group.rank, group.size);
    return;
  }
  RowStats<acc_t> s = context_statistics<Loss>(r, a);
  if constexpr ((Loss::kNeeds & kScaledSoftmax) != 0) {
    const auto unscaled = single_logit_scale(acc_t(1));
    const Partial first = group.all_reduce(gather_row_partial<Loss, Gather::kWithoutExpSums>(
                                               r, a, params, group.rank, group.size, Partial::empty(), unscaled),
                                           unscaled);
    const Partial start = choose_row_scale<Loss>(first, s, params);
    const auto scale = single_logit_scale(s.logit_scale);
    const Partial second = group.all_reduce(
        gather_row_partial<Loss, Gather::kExpSums>(r, a, params, group.rank, group.size, start, scale), scale);
    second.fill_exp_sums(s);
  } else {
    const auto unscaled = single_logit_scale(acc_t(1));
    const Partial total = group.all_reduce(gather_row_partial<Loss, Gather::kEverything>(
                                               r, a, params, group.rank, group.size, Partial::empty(), unscaled),
                                           unscaled);
    total.fill_statistics(s);
    total.fill_exp_sums(s);
  }
  finish_row<Loss>(r, s, a, params, group.rank, group.size);
}

// A kernel's work, row by row: Task::Partial is what its row groups reduce
// (the block kernel keeps one per warp in shared memory), task.rows() the row
// count and task.run(row, group) one row by the threads of `group`.
template <class Loss, typename scalar_t, typename acc_t>
struct RowLossTask {
  using Partial = RowPartial<Loss, acc_t>;
  RowLossArgs<scalar_t, acc_t> args;
  typename Loss::Params params;

  __device__ __forceinline__ int64_t rows() const { return args.rows; }
  template <class Group>
  __device__ __forceinline__ void run(int64_t row, const Group& group) const {
    run_row<Loss>(row, args, params, group);
  }
};

template <class Task>
__global__ void __launch_bounds__(kWarpsPerRowBlock * kWarpSize) warp_per_row_kernel(const Task task) {
  const WarpGroup group{static_cast<int>(threadIdx.x % kWarpSize)};
  const int64_t warp = threadIdx.x / kWarpSize;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerRowBlock + warp; row < task.rows();
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerRowBlock) {
    task.run(row, group);
  }
}

template <class Task>
__global__ void __launch_bounds__(kMaxBlockThreads) block_per_row_kernel(const Task task) {
  using Partial = typename Task::Partial;
  __shared__ Partial warp_partials[kMaxBlockThreads / kWarpSize];
  const BlockGroup<Partial> group{static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x), warp_partials};
  for (int64_t row = blockIdx.x; row < task.rows(); row += gridDim.x) {
    task.run(row, group);
  }
}

// Runs `task` on `rows` rows of `classes` elements each, on the current stream:
// a warp per row up to kMaxWarpPerRowClasses classes, else a block per row.
template <class Task>
void launch_rows(const Task& task, int64_t rows, int64_t classes) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int group_threads = row_group_threads(classes);
  if (group_threads == kWarpSize) {
    const int64_t blocks = std::min((rows + kWarpsPerRowBlock - 1) / kWarpsPerRowBlock, kMaxGridBlocks);
    warp_per_row_kernel<<<static_cast<unsigned>(blocks), kWarpsPerRowBlock * kWarpSize, 0, stream>>>(task);
  } else {
    const int64_t blocks = std::min(rows, kMaxGridBlocks);
    block_per_row_kernel<<<static_cast<unsigned>(blocks), group_threads, 0, stream>>>(task);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

struct CudaRowLossDriver {
  // Sum of w_t over the rows that are not ignored (the row count for dense
  // losses), as a device scalar in the accumulation dtype, computed without a
  // host sync. Targets are clamped only for the gather: an out-of-range target
  // fails the kernel's device-side assert, as F.nll_loss does on CUDA.
  static at::Tensor target_weight_sum(const RowLossProblem& p) {
    const at::ScalarType acc = accumulation_dtype(p.input.scalar_type());
    if (p.target.dim() == 2) return at::full({}, static_cast<double>(p.rows), p.input.options().dtype(acc));
    // Summed in double, as the CPU driver does, then rounded once: a float32 sum of ones is exact only up to
    // 2^24 rows, and of weights loses their low bits long before.
    const at::Tensor target = p.target.to(at::kLong);
    const at::Tensor counted = target != p.ignore_index;
    if (!p.class_weight.defined()) return counted.sum(at::kDouble).to(acc);
    const at::Tensor target_weight = p.class_weight.index_select(0, target.clamp(0, p.classes - 1));
    return at::where(counted, target_weight.to(at::kDouble), 0).sum().to(acc);
  }

  // Calls launch(args) with the RowLossArgs<scalar_t, acc_t> of problem p
  // (the host simulation in tests/ calls it with CPU tensors). int32 and
  // uint8 targets are widened to int64 first (N * 8 bytes next to N * C
  // logits), so the kernels exist for int64 targets only.
  template <class Loss, class Launch>
  static void with_kernel_args(const RowLossProblem& p, const at::Tensor& target_weight_sum,
                               const at::Tensor& upstream, at::Tensor& row_values, at::Tensor& grad_input,
                               at::Tensor& row_param_grads, Launch&& launch) {
    constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
    const at::Tensor target = kDense ? at::Tensor() : p.target.to(at::kLong);
    const at::Tensor class_weight_total = p.class_weight.defined() ? p.class_weight.sum() : at::Tensor();
    const bool with_grad = grad_input.numel() > 0;

    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.input.scalar_type(), "lossext_row_loss_cuda", [&] {
      using acc_t = accumulation_t<scalar_t>;
      RowLossArgs<scalar_t, acc_t> a;
      a.input = p.input.data_ptr<scalar_t>();
      a.input_row_stride = p.input.stride(0);
      a.target = kDense ? nullptr : target.data_ptr<int64_t>();
      a.class_weight = p.class_weight.defined() ? p.class_weight.data_ptr<acc_t>() : nullptr;
      a.class_weight_total = class_weight_total.defined() ? class_weight_total.data_ptr<acc_t>() : nullptr;
      a.dense_coefficients = kDense ? p.target.data_ptr<acc_t>() : nullptr;
      a.target_weight_sum = target_weight_sum.data_ptr<acc_t>();
      a.upstream = upstream.defined() ? upstream.data_ptr<acc_t>() : nullptr;
      a.upstream_stride = (upstream.defined() && upstream.numel() > 1) ? 1 : 0;
      a.row_values = row_values.data_ptr<acc_t>();
      a.grad_input = with_grad ? grad_input.data_ptr<scalar_t>() : nullptr;
      // Input row i starts at input + i * stride and gradient row i at
      // grad + i * C; they share their offset from a 16-byte boundary for
      // every i when the bases do and (stride - C) elements are whole 16-byte units.
      const auto address_gap = reinterpret_cast<uintptr_t>(a.input) - reinterpret_cast<uintptr_t>(a.grad_input);
      a.vectorised_gradient = with_grad && address_gap % 16 == 0 &&
                              ((a.input_row_stride - p.classes) * static_cast<int64_t>(sizeof(scalar_t))) % 16 == 0;
      a.rows = p.rows;
      a.classes = p.classes;
      a.ignore_index = p.ignore_index;
      a.reduction = p.reduction;
      a.logit_softcap = static_cast<acc_t>(p.logit_softcap);
      a.tensor_params = p.tensor_params.defined() ? p.tensor_params.data_ptr<acc_t>() : nullptr;
      a.row_param_grads = row_param_grads.numel() > 0 ? row_param_grads.data_ptr<acc_t>() : nullptr;
      launch(a);
    });
  }

  template <class Loss>
  static void run(const RowLossProblem& p, const typename Loss::Params& params,
                  const at::Tensor& target_weight_sum, const at::Tensor& upstream, at::Tensor& row_values,
                  at::Tensor& grad_input, at::Tensor& row_param_grads) {
    if (p.rows == 0) return;
    const c10::cuda::CUDAGuard device_guard(p.input.device());
    const auto launch = [&](const auto& a) {
      using Args = std::decay_t<decltype(a)>;
      using Task = RowLossTask<Loss, typename Args::scalar_type, typename Args::accumulation_type>;
      launch_rows(Task{a, params}, p.rows, p.classes);
    };
    with_kernel_args<Loss>(p, target_weight_sum, upstream, row_values, grad_input, row_param_grads, launch);
  }
};

}  // namespace cuda
}  // namespace lossext
