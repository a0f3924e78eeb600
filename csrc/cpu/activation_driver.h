// The CPU driver for activations (see csrc/activations/activation.h for the
// contract and csrc/ops/activation_ops.h for the op layer above it).
//
// Elementwise ops are one pass over memory: each task of at::parallel_for
// takes a range of whole vector-sized groups, converts to fp32 (fp64 for double)
// in registers, runs the activation on VecF, and converts back. The last,
// partial group is a masked (partial) vector, so every element runs the same
// vector code wherever it falls. Offsets are 64-bit.
//
// Channel ops (PReLU, Swish) view the tensor as (outer, channels, inner). Where
// inner > 1 (or there is one parameter) the parameter is constant along runs
// of `inner` elements and is broadcast; where inner == 1 ((N, C) inputs) it
// varies along the contiguous dimension and is loaded as a vector. The
// parameter's gradient is summed per chunk of a fixed size that depends on
// the shape alone, and the chunks' sums are added in chunk order in double,
// so the result is the same for any number of threads.
//
// Softmax keeps one row (or, for a non-last dim, one block of 32 columns) in a
// per-task fp32 scratch buffer: one read of the input, one write of the output.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/accumulation.h"
#include "cpu/lanes.h"
#include "cpu/streaming.h"
#include "cpu/vec/math.h"
#include "cpu/vec/memory.h"
#include "cpu/vec/vector.h"
#include "ops/activation_ops.h"

namespace lossext {
namespace cpu {

// Elements per parallel task, at least: enough to hide the task overhead.
constexpr int64_t kElementGrain = int64_t(1) << 15;
// Vectors of adjacent columns per work item of softmax over a non-last dim.
constexpr int64_t kColumnVectors = 4;

// The first `count` (< width) elements at p, the other lanes set to `fill`.
template <typename acc_t, typename scalar_t>
typename Lane<acc_t>::type load_partial(const scalar_t* p, int64_t count, scalar_t fill) {
  return Lane<acc_t>::load_partial(p, count, static_cast<acc_t>(fill));
}

template <typename acc_t, typename scalar_t>
void store_partial(scalar_t* p, int64_t count, typename Lane<acc_t>::type v) {
  Lane<acc_t>::store_partial(p, count, v);
}

// Sum of the first `count` lanes, in lane order.
template <typename acc_t>
acc_t sum_lanes(typename Lane<acc_t>::type v, int64_t count) {
  acc_t buffer[Lane<acc_t>::kWidth];
  Lane<acc_t>::store(buffer, v);
  acc_t total = 0;
  for (int64_t k = 0; k < count; ++k) total += buffer[k];
  return total;
}

// Whether map_range takes scalar_t two vectors at a time: bfloat16, in
// even/odd lanes (vec/memory.h's BFloat16Pairs), so each store also fills a 64-byte
// line on AVX-512.
template <typename acc_t, typename scalar_t>
constexpr bool kMapsPairs = std::is_same_v<scalar_t, c10::BFloat16> && std::is_same_v<acc_t, float>;

// out[i] = fn(in[i]...) for i in [begin, end): whole steps of one vector (two
// for bfloat16), partial vectors where less than a step is left. The
// pointers are parameters, not a lambda's captures: held in the lambda object
// they would be reloaded after every store (a store may alias the object as
// far as the compiler knows).
//
// Streamed (`stream`), the range is written upwards, partial vectors up to the
// first address aligned to a step's bytes, then whole steps with streaming
// stores. Otherwise it runs from the end down. Written upwards, a loop whose
// arithmetic outlasts its memory traffic slows by up to half, depending on
// where the output lies relative to the input modulo 4 KiB: measured on 2^26
// bfloat16 elements, one thread, sigmoid's forward took 40 ms for
// (out - in) mod 4096 in [384, 1536] and 58-62 ms in [1792, 3072]. That is the
// pattern of 4K aliasing: a load whose address matches, in its low 12 bits, a
// store still waiting in the store buffer for its line waits with it, and the
// stores that wait are the ones 1.5-3 KiB behind the loads. Written downwards,
// the same loop took 40 ms at every offset (float32: 47-50 ms both ways).
template <typename acc_t, typename scalar_t, typename Fn, typename... In>
inline void map_range(int64_t begin, int64_t end, bool stream, scalar_t* out, const Fn& fn, const In*... in) {
  using L = Lane<acc_t>;
  constexpr int64_t W = L::kWidth;
  constexpr bool kPairs = kMapsPairs<acc_t, scalar_t>;
  constexpr int64_t kStep = kPairs ? 2 * W : W;
  const auto partial_vectors = [&](int64_t from, int64_t to) {  // to - from < kStep
    for (int64_t j = from; j < to; j += W) {
      const int64_t count = std::min(W, to - j);
      L::store_partial(out + j, count, fn(L::load_partial(in + j, count, acc_t(0))...));
    }
  };
  const auto whole_step = [&](int64_t i, bool streamed) {
    if constexpr (kPairs) {
      const auto map_pairs = [&](const auto&... pairs) {
        const uint_vector_t words = bfloat16_pair_words(fn(pairs.even...), fn(pairs.odd...));
        if (streamed) {
          stream_raw(out + i, words);
        } else {
          std::memcpy(out + i, &words, sizeof(words));
        }
      };
      map_pairs(BFloat16Pairs(in + i)...);
    } else {
      const auto y = fn(L::load_converted(in + i)...);
      if (streamed) {
        L::store_streaming(out + i, y);
      } else {
        L::store_converted(out + i, y);
      }
    }
  };
  if (stream) {
    const auto address = reinterpret_cast<uintptr_t>(out + begin);
    const int64_t past_alignment = static_cast<int64_t>(address / sizeof(scalar_t) % kStep);
    int64_t i = past_alignment == 0 ? begin : std::min(end, begin + kStep - past_alignment);
    partial_vectors(begin, i);
    for (; i + kStep <= end; i += kStep) whole_step(i, true);
    partial_vectors(i, end);
    streaming_fence();  // before at::parallel_for reports this range done
    return;
  }
  int64_t i = end - (end - begin) % kStep;
  partial_vectors(i, end);
  for (i -= kStep; i >= begin; i -= kStep) whole_step(i, false);
}

// Whether Act declares its forward (backward) light (activation.h); false
// where it does not say. (C++17: CMakeLists.txt builds these headers too.)
template <class Act, class = void>
struct LightForward : std::false_type {};
template <class Act>
struct LightForward<Act, std::void_t<decltype(Act::kLightForward)>> : std::bool_constant<Act::kLightForward> {};
template <class Act, class = void>
struct LightBackward : std::false_type {};
template <class Act>
struct LightBackward<Act, std::void_t<decltype(Act::kLightBackward)>> : std::bool_constant<Act::kLightBackward> {};

// Whether an output of numel elements, written store_bytes at a time, is
// streamed: when it is too large for the last-level cache and each store
// fills a 64-byte line (float32 on AVX-512; bfloat16 too where map_range
// takes it in pairs), so the op moves two bytes of DRAM traffic per byte of
// output, not three. Half-line streaming stores measured slower for the
// activations (bfloat16 one vector at a time: Hardtanh forward+backward on
// 2^26 elements 43 ms streamed, 33 ms not).
template <typename scalar_t>
bool stream_output(const scalar_t* out, int64_t numel, int64_t store_bytes) {
  return store_bytes >= 64 && numel > 0 && use_streaming_stores(out, numel * static_cast<int64_t>(sizeof(scalar_t)));
}

// out[i] = fn(in[i]...) for i < n, fn called on lanes of acc_t; a light fn's
// large outputs are streamed (stream_output).
template <typename acc_t, typename scalar_t, typename Fn, typename... In>
void map_elements(int64_t n, bool light, scalar_t* out, const Fn& fn, const In*... in) {
  constexpr int64_t W = Lane<acc_t>::kWidth;
  const int64_t groups = (n + W - 1) / W;
  constexpr int64_t kStoreBytes = sizeof(scalar_t) * W * (kMapsPairs<acc_t, scalar_t> ? 2 : 1);
  const bool stream = light && stream_output(out, n, kStoreBytes);
  at::parallel_for(0, groups, kElementGrain / W, [&](int64_t group_begin, int64_t group_end) {
    map_range<acc_t>(group_begin * W, std::min(group_end * W, n), stream, out, fn, in...);
  });
}

struct CpuActivationDriver {
  template <class Act, class MakeParams>
  static void map_forward(const at::Tensor& input, at::Tensor& output, const MakeParams& make_params) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_activation_cpu", [&] {
      using acc_t = accumulation_t<scalar_t>;
      const auto params = make_params(acc_t{});
      map_elements<acc_t>(
          input.numel(), LightForward<Act>::value, output.data_ptr<scalar_t>(),
          [&](auto x) { return Act::template forward<decltype(x), acc_t>(x, params); },
          input.const_data_ptr<scalar_t>());
    });
  }

  template <class Act, class MakeParams>
  static void map_backward(const at::Tensor& grad_output, const at::Tensor& saved, at::Tensor& grad_input,
                           const MakeParams& make_params) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, saved.scalar_type(), "lossext_activation_cpu", [&] {
      using acc_t = accumulation_t<scalar_t>;
      const auto params = make_params(acc_t{});
      map_elements<acc_t>(
          saved.numel(), LightBackward<Act>::value, grad_input.data_ptr<scalar_t>(),
          [&](auto g, auto s) { return Act::template backward<decltype(g), acc_t>(g, s, params); },
          grad_output.const_data_ptr<scalar_t>(), saved.const_data_ptr<scalar_t>());
    });
  }

  // Runs of `inner` elements share one parameter (layout.inner > 1, or one
  // parameter for the whole tensor): visit(begin, end, channel) for the runs
  // that cover [begin, end).
  template <typename Visit>
  static void for_each_run(const DimLayout& layout, int64_t begin, int64_t end, const Visit& visit) {
    int64_t i = begin;
    while (i < end) {
      const int64_t block = i / layout.inner;
      const int64_t run_end = std::min(end, (block + 1) * layout.inner);
      visit(i, run_end, block % layout.size);
      i = run_end;
    }
  }

  static bool parameter_varies_along_rows(const DimLayout& layout) { return layout.inner == 1 && layout.size > 1; }

  template <class Act>
  static void channel_forward(const at::Tensor& input, const at::Tensor& parameter, const DimLayout& layout,
                              at::Tensor& output) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_channel_cpu", [&] {
      using acc_t = accumulation_t<scalar_t>;
      using L = Lane<acc_t>;
      using V = typename L::type;
      constexpr int64_t W = L::kWidth;
      const scalar_t* x = input.const_data_ptr<scalar_t>();
      const acc_t* p = parameter.const_data_ptr<acc_t>();
      scalar_t* y = output.data_ptr<scalar_t>();
      // Applies the activation to [begin, end) with parameter lanes from `parameter_at(i)`.
      auto apply = [&](int64_t begin, int64_t end, auto parameter_at) {
        int64_t i = begin;
        for (; i + W <= end; i += W) L::store_converted(y + i, Act::forward(L::load_converted(x + i), parameter_at(i, W)));
        if (i < end) {
          store_partial<acc_t>(y + i, end - i,
                               Act::forward(load_partial<acc_t>(x + i, end - i, scalar_t(0)), parameter_at(i, end - i)));
        }
      };
      if (parameter_varies_along_rows(layout)) {
        const int64_t C = layout.size;
        at::parallel_for(0, layout.outer, std::max<int64_t>(1, kElementGrain / C), [&](int64_t row_begin, int64_t row_end) {
          for (int64_t row = row_begin; row < row_end; ++row) {
            const int64_t base = row * C;
            apply(base, base + C, [&](int64_t i, int64_t count) {
              return count == W ? L::load(p + (i - base)) : load_partial<acc_t>(p + (i - base), count, acc_t(0));
            });
          }
        });
      } else {
        const int64_t n = input.numel();
        const int64_t groups = (n + W - 1) / W;
        at::parallel_for(0, groups, kElementGrain / W, [&](int64_t group_begin, int64_t group_end) {
          for_each_run(layout, group_begin * W, std::min(group_end * W, n), [&](int64_t begin, int64_t end, int64_t c) {
            const V broadcast(p[c]);
            apply(begin, end, [&](int64_t, int64_t) { return broadcast; });
          });
        });
      }
    });
  }

  template <class Act>
  static void channel_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& parameter,
                               const DimLayout& layout, at::Tensor& grad_input, at::Tensor& grad_parameter) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_channel_cpu", [&] {
      using acc_t = accumulation_t<scalar_t>;
      using L = Lane<acc_t>;
      using V = typename L::type;
      constexpr int64_t W = L::kWidth;
      const scalar_t* g = grad_output.const_data_ptr<scalar_t>();
      const scalar_t* x = input.const_data_ptr<scalar_t>();
      const acc_t* p = parameter.const_data_ptr<acc_t>();
      scalar_t* dx = grad_input.data_ptr<scalar_t>();
      const bool want_parameter_grad = grad_parameter.defined();
      const int64_t C = layout.size;
      const bool along_rows = parameter_varies_along_rows(layout);
      // A chunk is a fixed number of rows (along_rows) or of elements: at
      // least 2^15 elements, and at least 16 (64) times the channel count so
      // the per-chunk partial sums stay under 1/16 of the input's size.
      const int64_t units = along_rows ? layout.outer : input.numel();
      const int64_t chunk = along_rows ? std::max<int64_t>(16, (kElementGrain + C - 1) / C)
                                       : (std::max<int64_t>(kElementGrain, 64 * C) + W - 1) / W * W;
      const int64_t num_chunks = (units + chunk - 1) / chunk;
      std::vector<acc_t> partial(want_parameter_grad ? static_cast<size_t>(num_chunks * C) : 0, acc_t(0));

      at::parallel_for(0, num_chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
        for (int64_t k = chunk_begin; k < chunk_end; ++k) {
          acc_t* chunk_sum = want_parameter_grad ? partial.data() + k * C : nullptr;
          const int64_t unit_begin = k * chunk, unit_end = std::min(units, unit_begin + chunk);
          if (along_rows) {
            for (int64_t row = unit_begin; row < unit_end; ++row) {
              const int64_t base = row * C;
              int64_t j = 0;
              for (; j + W <= C; j += W) {
                V term;
                L::store_converted(dx + base + j, Act::backward(L::load_converted(g + base + j),
                                                                L::load_converted(x + base + j), L::load(p + j), term));
                if (want_parameter_grad) L::store(chunk_sum + j, L::load(chunk_sum + j) + term);
              }
              if (j < C) {
                const int64_t count = C - j;
                V term;
                store_partial<acc_t>(dx + base + j, count,
                                     Act::backward(load_partial<acc_t>(g + base + j, count, scalar_t(0)),
                                                   load_partial<acc_t>(x + base + j, count, scalar_t(0)),
                                                   load_partial<acc_t>(p + j, count, acc_t(0)), term));
                if (want_parameter_grad) {
                  acc_t terms[W];
                  L::store(terms, term);
                  for (int64_t lane = 0; lane < count; ++lane) chunk_sum[j + lane] += terms[lane];
                }
              }
            }
          } else {
            for_each_run(layout, unit_begin, unit_end, [&](int64_t begin, int64_t end, int64_t c) {
              const V broadcast(p[c]);
              V run_sum(acc_t(0));
              int64_t i = begin;
              for (; i + W <= end; i += W) {
                V term;
                L::store_converted(dx + i, Act::backward(L::load_converted(g + i), L::load_converted(x + i), broadcast, term));
                run_sum = run_sum + term;
              }
              acc_t total = L::reduce_sum(run_sum);
              if (i < end) {
                V term;
                store_partial<acc_t>(dx + i, end - i,
                                     Act::backward(load_partial<acc_t>(g + i, end - i, scalar_t(0)),
                                                   load_partial<acc_t>(x + i, end - i, scalar_t(0)), broadcast, term));
                total += sum_lanes<acc_t>(term, end - i);
              }
              if (want_parameter_grad) chunk_sum[c] += total;
            });
          }
        }
      });

      if (want_parameter_grad) {
        std::vector<double> total(static_cast<size_t>(C), 0.0);
        for (int64_t k = 0; k < num_chunks; ++k) {
          for (int64_t c = 0; c < C; ++c) total[c] += static_cast<double>(partial[k * C + c]);
        }
        acc_t* out = grad_parameter.data_ptr<acc_t>();
        for (int64_t c = 0; c < C; ++c) out[c] = static_cast<acc_t>(total[c]);
      }
    });
  }

  static void softmax_forward(const at::Tensor& input, const DimLayout& layout, at::Tensor& output) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "lossext_softmax_cpu", [&] {
      using acc_t = accumulation_t<scalar_t>;
      using L = Lane<acc_t>;
      using V = typename L::type;
      constexpr int64_t W = L::kWidth;
      const scalar_t* x = input.const_data_ptr<scalar_t>();
      scalar_t* y = output.data_ptr<scalar_t>();
      const int64_t D = layout.size, inner = layout.inner;
      const scalar_t minus_infinity = -std::numeric_limits<scalar_t>::infinity();
      if (inner == 1) {
        // Rows: max and sum are reduced across lanes. The partial last group
        // is padded with -inf, which adds e^-inf = 0 to the sum. The output
        // pass is light: streamed as map_elements does.
        const bool stream = stream_output(y, output.numel(), sizeof(scalar_t) * W);
        at::parallel_for(0, layout.outer, std::max<int64_t>(1, kElementGrain / D), [&](int64_t begin, int64_t end) {
          // A vector's room past the row: write_row loads whole vectors from any j < D.
          std::vector<acc_t> scratch(static_cast<size_t>(D + W));
          acc_t* z = scratch.data();
          for (int64_t row = begin; row < end; ++row) {
            const scalar_t* in = x + row * D;
            scalar_t* out = y + row * D;
            V row_max(-std::numeric_limits<acc_t>::infinity());
            for (int64_t j = 0; j < D; j += W) {
              const V v = j + W <= D ? L::load_converted(in + j) : load_partial<acc_t>(in + j, D - j, minus_infinity);
              L::store(z + j, v);
              row_max = maximum(row_max, v);
            }
            const V m(L::reduce_max(row_max));
            V sum(acc_t(0));
            for (int64_t j = 0; j < D; j += W) {
              const V e = Softmax::shifted_exponential(L::load(z + j), m);
              L::store(z + j, e);
              sum = sum + e;
            }
            const acc_t inverse_sum = acc_t(1) / L::reduce_sum(sum);
            write_row<L>(out, D, stream, [&](int64_t j, int64_t) { return L::load(z + j) * V(inverse_sum); });
          }
          if (stream) streaming_fence();
        });
        return;
      }
      // Columns (dim is not the last): each lane is one column, with its own
      // max and sum, so nothing crosses lanes. A work item takes
      // kColumnVectors vectors of adjacent columns (32 floats: two whole
      // cache lines per row, and a quarter of the TLB misses of one vector,
      // as rows are `inner` elements apart).
      const int64_t block = kColumnVectors * W;
      const int64_t column_blocks = (inner + block - 1) / block;
      at::parallel_for(0, layout.outer * column_blocks, std::max<int64_t>(1, kElementGrain / (D * block)),
                       [&](int64_t begin, int64_t end) {
        std::vector<acc_t> scratch(static_cast<size_t>(D * block));
        acc_t* z = scratch.data();
        for (int64_t item = begin; item < end; ++item) {
          const int64_t o = item / column_blocks;
          const int64_t first = (item % column_blocks) * block;
          const int64_t vectors = (std::min(block, inner - first) + W - 1) / W;
          const int64_t base = o * D * inner + first;
          V column_max[kColumnVectors], sum[kColumnVectors], inverse_sum[kColumnVectors];
          for (int64_t v = 0; v < vectors; ++v) {
            column_max[v] = V(-std::numeric_limits<acc_t>::infinity());
            sum[v] = V(acc_t(0));
          }
          // The scratch holds row d's vectors at z + d * block.
          for (int64_t d = 0; d < D; ++d) {
            for (int64_t v = 0; v < vectors; ++v) {
              const int64_t count = std::min(W, inner - first - v * W);
              const scalar_t* in = x + base + d * inner + v * W;
              const V value = count == W ? L::load_converted(in) : load_partial<acc_t>(in, count, scalar_t(0));
              L::store(z + d * block + v * W, value);
              column_max[v] = maximum(column_max[v], value);
            }
          }
          for (int64_t d = 0; d < D; ++d) {
            for (int64_t v = 0; v < vectors; ++v) {
              const V e = Softmax::shifted_exponential(L::load(z + d * block + v * W), column_max[v]);
              L::store(z + d * block + v * W, e);
              sum[v] = sum[v] + e;
            }
          }
          for (int64_t v = 0; v < vectors; ++v) inverse_sum[v] = V(acc_t(1)) / sum[v];
          for (int64_t d = 0; d < D; ++d) {
            for (int64_t v = 0; v < vectors; ++v) {
              const int64_t count = std::min(W, inner - first - v * W);
              scalar_t* out = y + base + d * inner + v * W;
              const V value = L::load(z + d * block + v * W) * inverse_sum[v];
              if (count == W) {
                L::store_converted(out, value);
              } else {
                store_partial<acc_t>(out, count, value);
              }
            }
          }
        }
      });
    });
  }

  static void softmax_backward(const at::Tensor& grad_output, const at::Tensor& output, const DimLayout& layout,
                               at::Tensor& grad_input) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, output.scalar_type(), "lossext_softmax_cpu", [&] {
      using acc_t = accumulation_t<scalar_t>;
      using L = Lane<acc_t>;
      using V = typename L::type;
      constexpr int64_t W = L::kWidth;
      const scalar_t* g = grad_output.const_data_ptr<scalar_t>();
      const scalar_t* y = output.const_data_ptr<scalar_t>();
      scalar_t* dx = grad_input.data_ptr<scalar_t>();
      const int64_t D = layout.size, inner = layout.inner;
      auto load = [&](const scalar_t* p, int64_t count) {
        return count == W ? L::load_converted(p) : load_partial<acc_t>(p, count, scalar_t(0));
      };
      auto store = [&](scalar_t* p, int64_t count, V v) {
        if (count == W) {
          L::store_converted(p, v);
        } else {
          store_partial<acc_t>(p, count, v);
        }
      };
      if (inner == 1) {
        // Rows: <g, y> across lanes (padding adds 0 * 0), then y (g - <g, y>),
        // streamed as the forward's output.
        const bool stream = stream_output(dx, grad_input.numel(), sizeof(scalar_t) * W);
        at::parallel_for(0, layout.outer, std::max<int64_t>(1, kElementGrain / D), [&](int64_t begin, int64_t end) {
          for (int64_t row = begin; row < end; ++row) {
            const int64_t base = row * D;
            V dot(acc_t(0));
            for (int64_t j = 0; j < D; j += W) {
              const int64_t count = std::min(W, D - j);
              dot = dot + load(g + base + j, count) * load(y + base + j, count);
            }
            const acc_t grad_dot_output = L::reduce_sum(dot);
            write_row<L>(dx + base, D, stream, [&](int64_t j, int64_t count) {
              return Softmax::input_gradient(load(g + base + j, count), load(y + base + j, count), V(grad_dot_output));
            });
          }
          if (stream) streaming_fence();
        });
        return;
      }
      // Columns: blocks of kColumnVectors vectors, as in the forward.
      const int64_t block = kColumnVectors * W;
      const int64_t column_blocks = (inner + block - 1) / block;
      at::parallel_for(0, layout.outer * column_blocks, std::max<int64_t>(1, kElementGrain / (D * block)),
                       [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t o = item / column_blocks;
          const int64_t first = (item % column_blocks) * block;
          const int64_t vectors = (std::min(block, inner - first) + W - 1) / W;
          V dot[kColumnVectors];
          for (int64_t v = 0; v < vectors; ++v) dot[v] = V(acc_t(0));
          const int64_t base = o * D * inner + first;
          for (int64_t d = 0; d < D; ++d) {
            for (int64_t v = 0; v < vectors; ++v) {
              const int64_t at = base + d * inner + v * W;
              const int64_t count = std::min(W, inner - first - v * W);
              dot[v] = dot[v] + load(g + at, count) * load(y + at, count);
            }
          }
          for (int64_t d = 0; d < D; ++d) {
            for (int64_t v = 0; v < vectors; ++v) {
              const int64_t at = base + d * inner + v * W;
              const int64_t count = std::min(W, inner - first - v * W);
              store(dx + at, count, Softmax::input_gradient(load(g + at, count), load(y + at, count), dot[v]));
            }
          }
        }
      });
    });
  }
};

}  // namespace cpu
}  // namespace lossext
