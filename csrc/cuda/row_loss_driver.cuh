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
// orders pass 1's reads before pass 2's writes.
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

#include "../losses/row_loss.h"
#include "../row_loss_op.h"

namespace lossext {
namespace cuda {

constexpr int kWarpSize = 32;
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

// exp in the accumulation type: the hardware approximation for float (a few
// ulp, against results rounded to the input's dtype), the exact one for double.
// (The host branch serves the host simulation of the kernels in tests/.)
LOSSEXT_HOST_DEVICE float device_exp(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  return ::expf(x);
#endif
}
LOSSEXT_HOST_DEVICE double device_exp(double x) { return ::exp(x); }

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

// What one pass over a row gathers. A loss's statistics come from one pass
// (kEverything), except with kScaledSoftmax, whose scale s depends on other
// statistics (the two-scale loss's margin): then a first pass gathers those
// (kWithoutExpSums) and a second the sums of exp(s (o - m)), with the row's
// max m and s known (kExpSums).
enum class Gather { kEverything, kWithoutExpSums, kExpSums };

// One thread's share of a row's statistics (the fields Loss::kNeeds asks
// for), combinable in any order; trivially constructible so an array of them
// can live in shared memory.
//
// The exp sums are kept relative to the running max m of the elements seen so
// far and rebased when m grows to m' (online softmax, Milakov & Gimelshein
// 2018), with e = exp(s (o - m)) and r = exp(s (m - m')):
//   sum e' = r sum e,   sum e'^2 = r^2 sum e^2,   sum w (o-m') = sum w (o-m) - (m'-m) sum w,
//   sum e' (o-m') = r (sum e (o-m) - (m'-m) sum e).
// Elements o = -inf are kept out of these sums (they add 0 to the exp sums,
// w * -inf to the weighted sum and 0 * -inf = NaN to the exp-weighted sum,
// whatever m is, as in the CPU driver), so that a thread whose elements so far
// are all -inf has empty sums and rebasing never computes -inf - -inf. The
// CPU driver's results for rows whose max is not finite (exp(o_j - m) is NaN
// at the max) are restored in fill_exp_sums().
template <class Loss, typename acc_t>
struct RowPartial {
  static constexpr unsigned kNeeds = Loss::kNeeds;
  static constexpr bool kSoftmaxSums = (kNeeds & kSoftmax) != 0;
  static constexpr bool kSquaredSum = (kNeeds & kSumExpSquared) != 0;
  static constexpr bool kSmoothing = (kNeeds & kSmoothingSum) != 0;
  static constexpr bool kExpWeighted = (kNeeds & kExpWeightedLogitSum) != 0;
  static constexpr bool kDense = (kNeeds & kDenseTarget) != 0;
  static constexpr bool kElements = (kNeeds & kElementSum) != 0;
  static constexpr bool kOther = (kNeeds & kMaxOther) != 0;
  // kSmoothingSum is relative to the max too.
  static constexpr bool kTracksMax = kSoftmaxSums || kSmoothing;
  // kOtherClassSums: sum_exp and sum_exp_squared leave the target out while
  // gathering, and fill_exp_sums adds its terms once. exp_weighted_sum's
  // rebase needs the full sum_exp, hence the exclusion below.
  static constexpr bool kOtherSums = (kNeeds & kOtherClassSums) != 0;
  static_assert(!kOtherSums || (!kExpWeighted && !kDense), "kOtherClassSums: not with kExpWeightedLogitSum or dense");

  acc_t max_logit;                    // m over the elements seen (NaN-propagating)
  acc_t sum_exp;                      // sum e over o != -inf
  acc_t sum_exp_squared;              // sum e^2 over o != -inf
  acc_t shifted_weighted_sum;         // sum w (o-m) over o != -inf
  acc_t shifted_weight;               // sum w over o != -inf, to rebase the line above
  acc_t exp_weighted_sum;             // sum e (o-m) over o != -inf (e (o-m) -> 0 as o -> -inf)
  acc_t minus_inf_weighted_sum;       // sum w * o over o == -inf
  acc_t weight_total;                 // sum w over all elements (dense rows' class_weight_total)
  acc_t element_sum;                  // sum_{j != t} Loss::element_value(o_j)
  acc_t max_other_logit;              // best candidate for max_{j != t} o_j ...
  int64_t max_other_index;            // ... and its index, -1 while there is none

  // Nothing gathered yet, with the exp sums relative to max_logit (-inf for
  // a pass that finds the max itself, the row's max for Gather::kExpSums).
  LOSSEXT_HOST_DEVICE static RowPartial empty(acc_t max_logit = -infinity<acc_t>()) {
    RowPartial p;
    p.max_logit = max_logit;
    p.sum_exp = p.sum_exp_squared = p.shifted_weighted_sum = p.shifted_weight = p.exp_weighted_sum = acc_t(0);
    p.minus_inf_weighted_sum = p.weight_total = p.element_sum = acc_t(0);
    p.max_other_logit = -infinity<acc_t>();
    p.max_other_index = -1;
    return p;
  }

  // Whether candidate (value, index) for the max-other logit beats (best,
  // best_index). As the CPU driver (and amax in the reference), a NaN among
  // the other logits makes the max NaN, at the first NaN's index; otherwise
  // the lowest index of the largest value wins. The order is total, so any
  // combination order gives the same answer.
  LOSSEXT_HOST_DEVICE static bool beats(acc_t value, int64_t index, acc_t best, int64_t best_index) {
    if (best_index < 0) return true;
    const bool value_is_nan = value != value, best_is_nan = best != best;
    if (value_is_nan != best_is_nan) return value_is_nan;
    if (value_is_nan) return index < best_index;
    return value > best || (value == best && index < best_index);
  }

  // Moves the running sums to a max of new_max >= max_logit (formulas above;
  // `scale` is s). A running max of -inf means only -inf elements were seen:
  // the sums are still empty and only the max moves.
  LOSSEXT_HOST_DEVICE void rebase(acc_t new_max, acc_t scale) {
    if (max_logit != -infinity<acc_t>() && new_max > max_logit) {
      const acc_t shift = new_max - max_logit;
      const acc_t factor = device_exp(-scale * shift);
      exp_weighted_sum = factor * (exp_weighted_sum - shift * sum_exp);
      sum_exp *= factor;
      sum_exp_squared *= factor * factor;
      shifted_weighted_sum -= shift * shifted_weight;
    }
    max_logit = new_max;
  }

  // Adds the chunk o_j ... o_{j+K-1} with class weights w to what kGather
  // gathers; `scale` is the softmax's s (1 but for kScaledSoftmax).
  // excluded_index is the target (the index max-other skips).
  template <Gather kGather, int K>
  LOSSEXT_HOST_DEVICE void add(int64_t j, const Chunk<acc_t, K>& o, const Chunk<acc_t, K>& w, acc_t scale,
                               int64_t excluded_index, const typename Loss::Params& params) {
    if constexpr (kTracksMax && kGather != Gather::kExpSums) {
      acc_t chunk_max = o.v[0];
#pragma unroll
      for (int k = 1; k < K; ++k) chunk_max = maximum(chunk_max, o.v[k]);
      if constexpr (kGather == Gather::kEverything) {
        rebase(maximum(max_logit, chunk_max), scale);
      } else {
        max_logit = maximum(max_logit, chunk_max);
      }
    }
    if constexpr (kTracksMax && kGather != Gather::kWithoutExpSums) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        if (o.v[k] == -infinity<acc_t>()) {
          if constexpr (kSmoothing) minus_inf_weighted_sum += w.v[k] * o.v[k];
        } else {
          const acc_t shifted = o.v[k] - max_logit;
          if constexpr (kSoftmaxSums) {
            const acc_t e = device_exp(scale * shifted);
            if (!kOtherSums || j + k != excluded_index) {
              sum_exp += e;
              if constexpr (kSquaredSum) sum_exp_squared += e * e;
            }
            if constexpr (kExpWeighted) exp_weighted_sum += e * shifted;
          }
          if constexpr (kSmoothing) {
            shifted_weighted_sum += w.v[k] * shifted;
            shifted_weight += w.v[k];
          }
        }
        if constexpr (kSmoothing && kDense) weight_total += w.v[k];
      }
    }
    if constexpr (kElements && kGather != Gather::kExpSums) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        // RowStats::element_sum leaves the target out (row_loss.h); dense rows
        // have none (their excluded_index 0 is only max-other's).
        if (kDense || j + k != excluded_index) element_sum += Loss::element_value(o.v[k], params);
      }
    }
    if constexpr (kOther && kGather != Gather::kExpSums) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t index = j + k;
        if (index != excluded_index && beats(o.v[k], index, max_other_logit, max_other_index)) {
          max_other_logit = o.v[k];
          max_other_index = index;
        }
      }
    }
  }

  // Adds `other`'s exp sums, rebased from its max to this one's. Only the
  // one-pass gathering (s = 1) has partials with different maxima; with
  // kScaledSoftmax every partial of the exp sums starts at the row's max.
  LOSSEXT_HOST_DEVICE void add_rebased_sums(const RowPartial& other) {
    if (other.max_logit == -infinity<acc_t>()) return;  // its sums are empty
    const acc_t shift = max_logit - other.max_logit;
    const acc_t factor = device_exp(-shift);
    if constexpr (kSoftmaxSums) sum_exp += other.sum_exp * factor;
    if constexpr (kSquaredSum) sum_exp_squared += other.sum_exp_squared * (factor * factor);
    if constexpr (kExpWeighted) exp_weighted_sum += factor * (other.exp_weighted_sum - shift * other.sum_exp);
    if constexpr (kSmoothing) {
      shifted_weighted_sum += other.shifted_weighted_sum - shift * other.shifted_weight;
      shifted_weight += other.shifted_weight;
    }
  }

  // Symmetric in a and b, so every lane of a butterfly reduction ends with
  // the same max and max-other index (comparisons only), and with the same
  // sums up to the rounding of a contracted multiply-add.
  LOSSEXT_HOST_DEVICE static RowPartial combine(const RowPartial& a, const RowPartial& b) {
    RowPartial r = empty();
    if constexpr (kTracksMax) {
      r.max_logit = maximum(a.max_logit, b.max_logit);
      r.add_rebased_sums(a);
      r.add_rebased_sums(b);
      if constexpr (kSmoothing) r.minus_inf_weighted_sum = a.minus_inf_weighted_sum + b.minus_inf_weighted_sum;
      if constexpr (kSmoothing && kDense) r.weight_total = a.weight_total + b.weight_total;
    }
    if constexpr (kElements) r.element_sum = a.element_sum + b.element_sum;
    if constexpr (kOther) {
      const bool take_a = a.max_other_index >= 0 &&
                          beats(a.max_other_logit, a.max_other_index, b.max_other_logit, b.max_other_index);
      r.max_other_logit = take_a ? a.max_other_logit : b.max_other_logit;
      r.max_other_index = take_a ? a.max_other_index : b.max_other_index;
    }
    return r;
  }

  __device__ __forceinline__ RowPartial shuffle_xor(int lane_mask) const {
    constexpr unsigned kAllLanes = 0xffffffffu;
    RowPartial p = *this;
    if constexpr (kTracksMax) p.max_logit = __shfl_xor_sync(kAllLanes, max_logit, lane_mask);
    if constexpr (kSoftmaxSums) p.sum_exp = __shfl_xor_sync(kAllLanes, sum_exp, lane_mask);
    if constexpr (kSquaredSum) p.sum_exp_squared = __shfl_xor_sync(kAllLanes, sum_exp_squared, lane_mask);
    if constexpr (kSmoothing) {
      p.shifted_weighted_sum = __shfl_xor_sync(kAllLanes, shifted_weighted_sum, lane_mask);
      p.shifted_weight = __shfl_xor_sync(kAllLanes, shifted_weight, lane_mask);
      p.minus_inf_weighted_sum = __shfl_xor_sync(kAllLanes, minus_inf_weighted_sum, lane_mask);
      if constexpr (kDense) p.weight_total = __shfl_xor_sync(kAllLanes, weight_total, lane_mask);
    }
    if constexpr (kExpWeighted) p.exp_weighted_sum = __shfl_xor_sync(kAllLanes, exp_weighted_sum, lane_mask);
    if constexpr (kElements) p.element_sum = __shfl_xor_sync(kAllLanes, element_sum, lane_mask);
    if constexpr (kOther) {
      p.max_other_logit = __shfl_xor_sync(kAllLanes, max_other_logit, lane_mask);
      p.max_other_index = __shfl_xor_sync(kAllLanes, max_other_index, lane_mask);
    }
    return p;
  }

  // The statistics that need no exponential: the row's max, element sum and
  // max-other logit.
  LOSSEXT_HOST_DEVICE void fill_statistics(RowStats<acc_t>& s) const {
    if constexpr (kTracksMax) s.max_logit = max_logit;
    if constexpr (kElements) s.element_sum = element_sum;
    if constexpr (kOther) {
      s.max_other_logit = max_other_logit;
      s.max_other_index = max_other_index;
    }
  }

  // The sums relative to the row's max s.max_logit. When that max is +inf,
  // -inf or NaN, exp(o_j - m) is NaN for the maximal elements, so the CPU
  // driver's sums are NaN; the same is returned here.
  LOSSEXT_HOST_DEVICE void fill_exp_sums(RowStats<acc_t>& s) const {
    if constexpr (kTracksMax) {
      const bool finite_max = s.max_logit - s.max_logit == acc_t(0);  // false for +-inf and NaN
      const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();
      if constexpr (kSoftmaxSums) s.sum_exp = finite_max ? sum_exp : nan;
      if constexpr (kSquaredSum) s.sum_exp_squared = finite_max ? sum_exp_squared : nan;
      if constexpr (kOtherSums) {
        const acc_t e_target = device_exp(s.logit_scale * (s.target_logit - s.max_logit));
        s.sum_exp_other = s.sum_exp;
        s.sum_exp += e_target;
        if constexpr (kSquaredSum) {
          s.sum_exp_squared_other = s.sum_exp_squared;
          s.sum_exp_squared += e_target * e_target;
        }
      }
      if constexpr (kExpWeighted) s.exp_weighted_logit_sum = finite_max ? exp_weighted_sum : nan;
      if constexpr (kSmoothing) {
        s.weighted_logit_sum = finite_max ? shifted_weighted_sum + minus_inf_weighted_sum : nan;
        if constexpr (kDense) s.class_weight_total = weight_total;
      }
    }
  }
};

template <class Partial>
__device__ __forceinline__ Partial warp_all_reduce(Partial p) {
#pragma unroll
  for (int lane_mask = kWarpSize / 2; lane_mask > 0; lane_mask /= 2) p = Partial::combine(p, p.shuffle_xor(lane_mask));
  return p;
}

// A warp working on one row.
struct WarpGroup {
  int rank;  // lane
  static constexpr int size = kWarpSize;

  template <class Partial>
  __device__ __forceinline__ Partial all_reduce(const Partial& p) const {
    const Partial total = warp_all_reduce(p);
    __syncwarp();  // the row's reads happen before any lane writes its gradient (which may alias it)
    return total;
  }
};

// A block working on one row. all_reduce must be reached by every thread.
template <class Partial>
struct BlockGroup {
  int rank;  // threadIdx.x
  int size;  // blockDim.x, a multiple of the warp size
  Partial* warp_partials;  // shared, one per warp

  __device__ __forceinline__ Partial all_reduce(const Partial& p) const {
    const Partial warp_total = warp_all_reduce(p);
    if (rank % kWarpSize == 0) warp_partials[rank / kWarpSize] = warp_total;
    __syncthreads();
    // Every thread combines the warps' partials in the same order, so all
    // hold the same statistics without a second barrier-and-broadcast.
    Partial total = warp_partials[0];
    for (int w = 1; w < size / kWarpSize; ++w) total = Partial::combine(total, warp_partials[w]);
    // warp_partials is rewritten for the next row, and the row's reads happen
    // before any thread writes its gradient (which may alias it).
    __syncthreads();
    return total;
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
};

// dl/do_j for one element: the special element (kMaxOther), the target, or
// any other, with z_j = e_j = exp(s (o_j - m)) for softmax losses (s = 1 but
// for kScaledSoftmax; plus the coefficients' exp_shift where they have one,
// row_loss.h) and o_j otherwise.
template <class Loss, typename acc_t>
LOSSEXT_HOST_DEVICE acc_t element_gradient_at(int64_t j, acc_t o, acc_t w, const RowStats<acc_t>& s, int64_t target,
                                              int64_t special_index,
                                              const typename Loss::template Coefficients<acc_t>& coeffs) {
  constexpr unsigned kNeeds = Loss::kNeeds;
  acc_t exponent = s.logit_scale * (o - s.max_logit);
  if constexpr (HasExpShift<typename Loss::template Coefficients<acc_t>>::value) exponent += coeffs.exp_shift;
  const acc_t z = (kNeeds & kSoftmax) != 0 ? device_exp(exponent) : o;
  if constexpr ((kNeeds & kMaxOther) != 0) {
    if (j == special_index) return Loss::special_gradient(z, w, coeffs);
  }
  if constexpr ((kNeeds & kDenseTarget) == 0) {
    if (j == target) return Loss::target_gradient(z, w, coeffs);
  }
  return Loss::template element_gradient<acc_t, acc_t>(z, w, coeffs);
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
    r.target_logit = static_cast<acc_t>(r.input[r.target]);
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
// gathers, added to `partial`, with softmax scale `scale`.
template <class Loss, Gather kGather, typename scalar_t, typename acc_t>
LOSSEXT_HOST_DEVICE RowPartial<Loss, acc_t> gather_row_partial(const RowContext<scalar_t, acc_t>& r,
                                                               const RowLossArgs<scalar_t, acc_t>& a,
                                                               const typename Loss::Params& params, int rank,
                                                               int size, RowPartial<Loss, acc_t> partial,
                                                               acc_t scale) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  for_each_chunk<kVec, acc_t>(r.input, a.classes, rank, size, [&](int64_t j, const auto& logits) {
    constexpr int K = std::decay_t<decltype(logits)>::kSize;
    partial.template add<kGather, K>(j, logits, load_weights<K>(r.weight, j), scale, r.target, params);
  });
  return partial;
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
// gradient, written once in the input's dtype.
template <class Loss, typename scalar_t, typename acc_t>
LOSSEXT_HOST_DEVICE void finish_row(const RowContext<scalar_t, acc_t>& r, const RowStats<acc_t>& s,
                                    const RowLossArgs<scalar_t, acc_t>& a, const typename Loss::Params& params,
                                    int rank, int size) {
  constexpr unsigned kNeeds = Loss::kNeeds;
  constexpr int kTensorParams = TensorParamCount<Loss>::value;
  constexpr int kVec = 16 / sizeof(scalar_t);
  ReductionInfo<acc_t> reduction;
  reduction.reduction = a.reduction;
  reduction.target_weight_sum = *a.target_weight_sum;
  reduction.total_rows = a.rows;

  if (rank == 0) a.row_values[r.row] = Loss::value(s, params, reduction);
  if (!r.grad) return;

  const acc_t upstream = a.upstream ? a.upstream[r.row * a.upstream_stride] : acc_t(1);
  if constexpr (kTensorParams > 0) {
    if (rank == 0) {
      Loss::param_gradients(s, params, reduction, upstream, a.row_param_grads + r.row * kTensorParams);
    }
  }
  const auto coeffs = Loss::coefficients(s, params, reduction, upstream);
  int64_t special_index = -1;
  if constexpr ((kNeeds & kMaxOther) != 0) {
    if (coeffs.special_index_used) special_index = s.max_other_index;
  }
  auto write_gradient = [&](int64_t j, const auto& logits) {
    constexpr int K = std::decay_t<decltype(logits)>::kSize;
    const Chunk<acc_t, K> w = load_weights<K>(r.weight, j);
    Chunk<scalar_t, K> out;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      out.v[k] = static_cast<scalar_t>(
          element_gradient_at<Loss>(j + k, logits.v[k], w.v[k], s, r.target, special_index, coeffs));
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
    const Partial first = group.all_reduce(gather_row_partial<Loss, Gather::kWithoutExpSums>(
        r, a, params, group.rank, group.size, Partial::empty(), acc_t(1)));
    first.fill_statistics(s);
    s.logit_scale = Loss::logit_scale(s, params);
    const Partial second = group.all_reduce(gather_row_partial<Loss, Gather::kExpSums>(
        r, a, params, group.rank, group.size, Partial::empty(s.max_logit), s.logit_scale));
    second.fill_exp_sums(s);
  } else {
    const Partial total = group.all_reduce(gather_row_partial<Loss, Gather::kEverything>(
        r, a, params, group.rank, group.size, Partial::empty(), acc_t(1)));
    total.fill_statistics(s);
    total.fill_exp_sums(s);
  }
  finish_row<Loss>(r, s, a, params, group.rank, group.size);
}

template <class Loss, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kWarpsPerRowBlock * kWarpSize)
    warp_per_row_kernel(const RowLossArgs<scalar_t, acc_t> a, const typename Loss::Params params) {
  const WarpGroup group{static_cast<int>(threadIdx.x % kWarpSize)};
  const int64_t warp = threadIdx.x / kWarpSize;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerRowBlock + warp; row < a.rows;
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerRowBlock) {
    run_row<Loss>(row, a, params, group);
  }
}

template <class Loss, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kMaxBlockThreads)
    block_per_row_kernel(const RowLossArgs<scalar_t, acc_t> a, const typename Loss::Params params) {
  using Partial = RowPartial<Loss, acc_t>;
  __shared__ Partial warp_partials[kMaxBlockThreads / kWarpSize];
  const BlockGroup<Partial> group{static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x), warp_partials};
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    run_row<Loss>(row, a, params, group);
  }
}

struct CudaRowLossDriver {
  // Sum of w_t over the rows that are not ignored (the row count for dense
  // losses), as a device scalar in the accumulation dtype, computed without a
  // host sync. Targets are clamped only for the gather: an out-of-range target
  // fails the kernel's device-side assert, as F.nll_loss does on CUDA.
  static at::Tensor target_weight_sum(const RowLossProblem& p) {
    const at::ScalarType acc = accumulation_dtype(p.input.scalar_type());
    if (p.target.dim() == 2) return at::full({}, static_cast<double>(p.rows), p.input.options().dtype(acc));
    const at::Tensor target = p.target.to(at::kLong);
    const at::Tensor counted = target != p.ignore_index;
    if (!p.class_weight.defined()) return counted.sum(acc);
    const at::Tensor target_weight = p.class_weight.index_select(0, target.clamp(0, p.classes - 1));
    return at::where(counted, target_weight, 0).sum();
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
      using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
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
      using scalar_t = typename Args::scalar_type;
      using acc_t = typename Args::accumulation_type;
      const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
      if (p.classes <= kMaxWarpPerRowClasses) {
        const int64_t blocks = std::min((p.rows + kWarpsPerRowBlock - 1) / kWarpsPerRowBlock, kMaxGridBlocks);
        warp_per_row_kernel<Loss, scalar_t, acc_t>
            <<<static_cast<unsigned>(blocks), kWarpsPerRowBlock * kWarpSize, 0, stream>>>(a, params);
      } else {
        const int64_t blocks = std::min(p.rows, kMaxGridBlocks);
        block_per_row_kernel<Loss, scalar_t, acc_t>
            <<<static_cast<unsigned>(blocks), block_threads_for(p.classes), 0, stream>>>(a, params);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    with_kernel_args<Loss>(p, target_weight_sum, upstream, row_values, grad_input, row_param_grads, launch);
  }
};

}  // namespace cuda
}  // namespace lossext
