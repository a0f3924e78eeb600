// The CPU driver for row losses (see csrc/losses/row_loss.h for the contract).
//
// Rows are split across threads with at::parallel_for. Each row is processed
// "row-resident": pass 1 reads the row from memory (its max, or a sum of
// element values), and every later pass finds it in the core's cache (a
// 32000-class fp32 row is 128 KiB; L2 here is 2 MiB per core). Pass 2
// computes e_j = exp(o_j - max) once per element, in fp32 (fp64 for double
// inputs), with the sums the loss needs, and keeps e in a per-thread row
// buffer; pass 3 writes the gradient from it. A training step therefore moves
// one read of the logits and one write of the gradient, whatever statistics
// the loss needs. Losses whose gradient needs no row statistic
// (kElementwiseGradient) take a single pass instead, writing each gradient as
// its logit is read. A gradient too large for the last-level cache is written
// with streaming stores (use_streaming_stores). Offsets are 64-bit.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/accumulation.h"
#include "cpu/lanes.h"
#include "cpu/streaming.h"
#include "cpu/vec/math.h"
#include "cpu/vec/memory.h"
#include "cpu/vec/vector.h"
#include "losses/row_finish.h"
#include "losses/row_loss.h"
#include "losses/row_partial.h"
#include "ops/row_loss_op.h"

namespace lossext {
namespace cpu {

// Everything one call of the driver reads and writes, as raw pointers.
template <typename scalar_t, typename acc_t, typename target_t>
struct RowLossPointers {
  const scalar_t* input;
  int64_t input_row_stride;
  const target_t* target;             // class indices, or nullptr for dense losses
  const acc_t* class_weight;          // (C,), or nullptr
  const acc_t* dense_coefficients;    // (N, C) for dense losses, else nullptr
  const acc_t* upstream;              // gradient of the output: 1 value or N values; nullptr means 1
  int64_t upstream_stride;            // 0 (one value) or 1 (per row)
  acc_t* row_values;                  // (N,)
  scalar_t* grad_input;               // (N, C) contiguous, or nullptr
  bool stream_gradient;               // write grad_input with streaming stores
  const acc_t* tensor_params;         // the loss's learnable scalars, or nullptr
  acc_t* row_param_grads;             // (N, kNumTensorParams), or nullptr
  acc_t logit_softcap;                // c of kLogitSoftcap (row_loss.h), 0 for none
};

// Calls body(j, k) for every vector start j < vector_end, kUnroll vectors per
// step with k = 0..kUnroll-1 as a compile-time constant, so reductions can keep
// kUnroll independent accumulators (acc[k]) and not wait on one add or max
// chain per vector.
template <typename Body, int... K>
inline void unrolled_step(Body& body, int64_t j, int64_t width, std::integer_sequence<int, K...>) {
  (body(j + K * width, std::integral_constant<int, K>{}), ...);
}

template <int kUnroll, typename Body>
inline void for_each_vector(int64_t vector_end, int64_t width, Body&& body) {
  int64_t j = 0;
  for (; j + kUnroll * width <= vector_end; j += kUnroll * width) {
    unrolled_step(body, j, width, std::make_integer_sequence<int, kUnroll>{});
  }
  for (; j < vector_end; j += width) body(j, std::integral_constant<int, 0>{});
}

template <int kUnroll, typename V>
struct Accumulators {
  V lanes[kUnroll];
  explicit Accumulators(V initial) {
    for (auto& lane : lanes) lane = initial;
  }
  template <typename Combine>
  V combined(Combine combine) const {
    V result = lanes[0];
    for (int k = 1; k < kUnroll; ++k) result = combine(result, lanes[k]);
    return result;
  }
};

// ---- The phases of a row ----
// run_rows puts them together as the CUDA driver's run_row does: open the row,
// gather its partial statistics (RowPartial, losses/row_partial.h), finish
// them (the scale choice, RowStats), value and coefficients (row_finish.h),
// write the gradient. The block ops (cpu/row_statistics.cpp) run the same
// passes on a block of a row's columns.

// A row, or a block of a row's columns, as the passes read it.
template <typename scalar_t, typename acc_t>
struct CpuRow {
  const scalar_t* input;  // the first logit
  scalar_t* grad;         // the first gradient element, or nullptr
  const acc_t* weight;    // the class weights, the dense coefficient row, or nullptr (all ones)
  int64_t columns;        // how many logits
  int64_t first_class;    // the class of input[0]: 0 but for a block
  // The target's column here, -1 when it is in another block. Dense rows have
  // none: 0 in the first block, so that max-other skips class 0 (as the CUDA driver).
  int64_t target;

  acc_t logit_softcap = 0;  // c of kLogitSoftcap (row_loss.h): the passes read c tanh(o / c); 0 for o

  acc_t weight_at(int64_t j) const { return weight ? weight[j] : acc_t(1); }

  // The logits as the loss sees them (row_loss.h, kLogitSoftcap): a whole
  // vector from column j, `count` of them with `fill` in the other lanes, or one.
  using Vector = typename Lane<acc_t>::type;
  Vector logits(int64_t j) const { return capped(Lane<acc_t>::load_converted(input + j)); }
  Vector logits(int64_t j, int64_t count, acc_t fill) const {
    const Vector loaded = Lane<acc_t>::load_partial(input + j, count, fill);
    return logit_softcap > acc_t(0) ? Lane<acc_t>::keep_first(count, capped(loaded), fill) : loaded;
  }
  // One logit through the same vector tanh as the others (a broadcast's max is its value), so that
  // o'_t - max_j o'_j is exactly 0 where the target is the max.
  acc_t logit(int64_t j) const {
    const acc_t o = static_cast<acc_t>(input[j]);
    return logit_softcap > acc_t(0) ? Lane<acc_t>::reduce_max(capped(Vector(o))) : o;
  }
  // do'/do at those logits (1 without a cap), the factor of each gradient element.
  Vector slope(int64_t j, int64_t count) const {
    return Lane<acc_t>::keep_first(count, capped_slope(logits(j, count, acc_t(0))), acc_t(0));
  }
  acc_t slope_at(int64_t j) const { return capped_logit_slope(logit(j), logit_softcap); }

 private:
  Vector capped(Vector o) const {
    using lossext::hyperbolic_tangent;       // the double rows' (scalar_math.h)
    using lossext::cpu::hyperbolic_tangent;  // the float rows' vector tanh (vec/math.h)
    if (!(logit_softcap > acc_t(0))) return o;
    const Vector cap(logit_softcap);
    return cap * hyperbolic_tangent(o / cap);
  }
  Vector capped_slope(Vector capped_logits) const {
    const Vector ratio = capped_logits / Vector(logit_softcap);
    return (Vector(acc_t(1)) - ratio) * (Vector(acc_t(1)) + ratio);
  }

 public:
  // The column the element sum leaves out (RowStats::element_sum), -1 for none.
  template <typename Loss>
  int64_t element_sum_excluded() const {
    return (Loss::kNeeds & kDenseTarget) != 0 ? -1 : target;
  }
};

// The first class of the W-wide vector holding column `column` (-1 for
// none), for the vector loops' test of whether a vector holds it.
template <int64_t W>
inline int64_t vector_start_of(int64_t column) {
  return column >= 0 ? column - column % W : -1;
}

// Pass 1 of a softmax loss, the one read of the row from memory (later passes
// find it in cache): its max and, with with_min (a scaled softmax that may
// take a negative scale), its min over the logits above -inf (row_partial.h).
template <typename Partial, typename scalar_t, typename acc_t>
LOSSEXT_ALWAYS_INLINE void gather_extremes(const CpuRow<scalar_t, acc_t>& r, Partial& p, bool with_min) {
  using L = Lane<acc_t>;
  using V = typename L::type;
  constexpr int64_t W = L::kWidth;
  constexpr int kUnroll = 4;
  const int64_t vector_end = r.columns - r.columns % W;
  const int64_t tail = r.columns - vector_end;
  const auto larger = [](V a, V b) { return unordered_maximum(a, b); };
  const auto smaller = [](V a, V b) { return where(b < a, b, a); };  // NaN b is passed over
  const auto pass = [&](auto min_wanted) LOSSEXT_INLINE_LAMBDA {
    Accumulators<kUnroll, V> row_max(V(-infinity<acc_t>()));
    Accumulators<kUnroll, V> row_min(V(infinity<acc_t>()));
    const auto take = [&](V x, auto k) {
      row_max.lanes[k] = unordered_maximum(row_max.lanes[k], x);
      if constexpr (decltype(min_wanted)::value) {
        const V above_minus_inf = where(x < V(std::numeric_limits<acc_t>::lowest()), V(infinity<acc_t>()), x);
        row_min.lanes[k] = smaller(row_min.lanes[k], above_minus_inf);
      }
    };
    for_each_vector<kUnroll>(vector_end, W, [&](int64_t j, auto k) { take(r.logits(j), k); });
    if (tail > 0) take(r.logits(vector_end, tail, -infinity<acc_t>()), std::integral_constant<int, 0>{});
    p.max_logit = L::reduce_max(row_max.combined(larger));
    if constexpr (decltype(min_wanted)::value) p.min_logit = -L::reduce_max(-row_min.combined(smaller));
  };
  if constexpr (Partial::kScaled) {
    if (with_min) return pass(std::true_type{});
  }
  pass(std::false_type{});
}

// Pass 1 of a kElementSum loss: the sum of the loss's element values, the
// target's left out (RowStats::element_sum).
template <typename Loss, typename Partial, typename scalar_t, typename acc_t>
LOSSEXT_ALWAYS_INLINE void gather_element_sum(const CpuRow<scalar_t, acc_t>& r, Partial& p,
                                              const typename Loss::Params& params) {
  using L = Lane<acc_t>;
  using V = typename L::type;
  constexpr int64_t W = L::kWidth;
  constexpr int kUnroll = 4;
  const int64_t vector_end = r.columns - r.columns % W;
  const int64_t tail = r.columns - vector_end;
  const int64_t excluded = r.template element_sum_excluded<Loss>();
  const int64_t excluded_block = vector_start_of<W>(excluded);
  Accumulators<kUnroll, V> sum(V(acc_t(0)));
  for_each_vector<kUnroll>(vector_end, W, [&](int64_t j, auto k) {
    V term = Loss::element_value(L::load_converted(r.input + j), params);
    if (j == excluded_block) term = L::with_lane_zeroed(term, excluded - j);
    sum.lanes[k] = sum.lanes[k] + term;
  });
  if (tail > 0) {
    V term = L::keep_first(tail, Loss::element_value(L::load_partial(r.input + vector_end, tail, acc_t(0)), params),
                           acc_t(0));
    if (vector_end == excluded_block) term = L::with_lane_zeroed(term, excluded - vector_end);
    sum.lanes[0] = sum.lanes[0] + term;
  }
  p.element_sum = L::reduce_sum(sum.combined([](V a, V b) { return a + b; }));
}

// The largest logit among the other classes, a vector max with the target's
// lane set to -inf (the row is in cache after pass 1), then for
// kMaxOtherIndex its first index by a scalar scan that stops there; -inf and
// no index when the target is the only class. NaN propagates, as amax in the
// reference (which then takes the larger scale of the two-scale loss): a NaN
// among the other logits is the max, at the first NaN's index. The index is
// the class (first_class + column).
template <typename Partial, typename scalar_t, typename acc_t>
LOSSEXT_ALWAYS_INLINE void gather_max_other(const CpuRow<scalar_t, acc_t>& r, Partial& p) {
  using L = Lane<acc_t>;
  using V = typename L::type;
  constexpr int64_t W = L::kWidth;
  constexpr int kUnroll = 4;
  const int64_t vector_end = r.columns - r.columns % W;
  const int64_t tail = r.columns - vector_end;
  const int64_t target = r.target;
  const int64_t target_block = vector_start_of<W>(target);
  const auto propagating_larger = [](V a, V b) { return maximum(a, b); };
  Accumulators<kUnroll, V> other_max(V(-infinity<acc_t>()));
  for_each_vector<kUnroll>(vector_end, W, [&](int64_t j, auto k) {
    V x = L::load_converted(r.input + j);
    if (j == target_block) x = L::with_lane_replaced(x, target - j, -infinity<acc_t>());
    other_max.lanes[k] = maximum(other_max.lanes[k], x);
  });
  if (tail > 0) {
    V x = L::load_partial(r.input + vector_end, tail, -infinity<acc_t>());
    if (vector_end == target_block) x = L::with_lane_replaced(x, target - vector_end, -infinity<acc_t>());
    other_max.lanes[0] = maximum(other_max.lanes[0], x);
  }
  const acc_t best = L::reduce_max(other_max.combined(propagating_larger));
  p.max_other_logit = best;
  if constexpr (Partial::kOtherIndex) {
    const bool best_is_nan = best != best;
    for (int64_t j = 0; j < r.columns; ++j) {
      const acc_t x = static_cast<acc_t>(r.input[j]);
      if (j != target && (best_is_nan ? x != x : x == best)) {
        p.max_other_index = r.first_class + j;
        break;
      }
    }
  }
}

// Pass 1 with what follows it in cache: every statistic but the exp sums
// (the min only with_min).
template <typename Loss, typename Partial, typename scalar_t, typename acc_t>
LOSSEXT_ALWAYS_INLINE void gather_first_pass(const CpuRow<scalar_t, acc_t>& r, Partial& p,
                                             const typename Loss::Params& params, bool with_min) {
  if constexpr (Partial::kTracksMax) gather_extremes(r, p, with_min);
  if constexpr (Partial::kElements) gather_element_sum<Loss>(r, p, params);
  if constexpr (Partial::kOther) gather_max_other(r, p);
}

// Pass 2 of a softmax loss, over the row in cache: with e = exp(s (o - ref))
// (row_partial.h: s = 1 but for kScaledSoftmax, whose -inf logits have e = 0),
// the sums of e, e^2 and e (o - ref) into slot `slot` of p, and with
// kWeightedSums the sum of w (o - m), m = p.max_logit (and for dense rows sum
// w). With kStoreExp, e goes to e_row for the gradient pass. Meanwhile
// next_row (unless nullptr) is prefetched into L2, one vector's worth of bytes
// per vector of this row, so all of it by the end: passes 2 and 3 work from
// cache and leave DRAM idle, and the next row's pass 1 then reads from L2
// instead of waiting on DRAM.
template <typename Loss, bool kStoreExp, bool kWeightedSums, typename Partial, typename scalar_t, typename acc_t>
LOSSEXT_ALWAYS_INLINE void gather_exp_sums(const CpuRow<scalar_t, acc_t>& r, Partial& p, int slot, acc_t scale,
                                           acc_t reference, acc_t* e_row, const char* next_row) {
  using L = Lane<acc_t>;
  using V = typename L::type;
  constexpr unsigned kNeeds = Loss::kNeeds;
  constexpr bool kScaled = Partial::kScaled;
  constexpr bool kDense = Partial::kDense;
  constexpr int64_t W = L::kWidth;
  constexpr int kExpUnroll = 2;  // exp is the bottleneck here; two chains hide the add latency
  const int64_t vector_end = r.columns - r.columns % W;
  const int64_t tail = r.columns - vector_end;
  const acc_t* w = r.weight;
  const V ref(reference);
  const V max_logit(p.max_logit);
  const V s(scale);
  const V lowest(std::numeric_limits<acc_t>::lowest());
  const auto add = [](V a, V b) { return a + b; };
  // kOtherClassSums: the target's lane is kept out of the sums of e and e^2 (row_partial.h).
  const int64_t target_block = Partial::kOtherSums ? vector_start_of<W>(r.target) : -1;
  // With masked (a scale s <= 0, or NaN): -inf logits are excluded
  // explicitly, as s (-inf - ref) is not -inf; with s > 0, ref is the max
  // and exp(s (o - max)) is 0 at o = -inf by itself.
  const auto pass = [&](auto masked) LOSSEXT_INLINE_LAMBDA {
    constexpr bool kMasked = decltype(masked)::value;
    Accumulators<kExpUnroll, V> sum_e(V(acc_t(0))), sum_e2(V(acc_t(0))), sum_wx(V(acc_t(0))), sum_w(V(acc_t(0))),
        sum_ex(V(acc_t(0)));
    // One vector of the pass into accumulator k; `count` < W only for the
    // tail, whose padding lanes (logit -inf) are kept out of every sum.
    const auto exp_step = [&](int64_t j, int64_t count, auto k) {
      const bool partial = count < W;
      const V logits = partial ? r.logits(j, count, -infinity<acc_t>()) : r.logits(j);
      const V shifted = logits - ref;
      // s (o - ref) <= 0 (or NaN) by the choice of ref: the cheaper exp.
      V e = exponential_nonpositive(kScaled ? s * shifted : shifted);
      if constexpr (kMasked) e = where(logits < lowest, V(acc_t(0)), e);
      if (partial) e = L::keep_first(count, e, acc_t(0));  // a row of -inf or +inf has NaN padding
      if constexpr (kStoreExp) L::store(e_row + j, e);
      V summed = e;
      if constexpr (Partial::kOtherSums) {
        if (j == target_block) summed = L::with_lane_zeroed(e, r.target - j);
      }
      sum_e.lanes[k] = sum_e.lanes[k] + summed;
      if constexpr ((kNeeds & kSumExpSquared) != 0) sum_e2.lanes[k] = sum_e2.lanes[k] + summed * summed;
      // Where e = 0 because o - ref is infinite (o = -inf; o = +inf with
      // s < 0), e (o - ref) is taken at its limit, 0.
      if constexpr ((kNeeds & kExpWeightedLogitSum) != 0) {
        const V finite_shift = kMasked ? where(e > V(acc_t(0)), shifted, V(acc_t(0))) : maximum(shifted, lowest);
        sum_ex.lanes[k] = sum_ex.lanes[k] + e * finite_shift;
      }
      if constexpr (kWeightedSums && (kNeeds & kSmoothingSum) != 0) {
        const V wj = w ? (partial ? L::load_partial(w + j, count, acc_t(0)) : L::load(w + j)) : V(acc_t(1));
        const V weighted = wj * (kScaled ? logits - max_logit : shifted);  // unscaled: ref is the max
        sum_wx.lanes[k] = sum_wx.lanes[k] + (partial ? L::keep_first(count, weighted, acc_t(0)) : weighted);
        if constexpr (kDense) sum_w.lanes[k] = sum_w.lanes[k] + wj;  // padding loads 0
      }
    };
    for_each_vector<kExpUnroll>(vector_end, W, [&](int64_t j, auto k) {
      if (next_row) __builtin_prefetch(next_row + j * sizeof(scalar_t), /*read*/ 0, /*into L2*/ 2);
      exp_step(j, W, k);
    });
    if (tail > 0) exp_step(vector_end, tail, std::integral_constant<int, 0>{});
    p.sum_exp[slot] = L::reduce_sum(sum_e.combined(add));
    p.sum_exp_squared[slot] = L::reduce_sum(sum_e2.combined(add));
    p.exp_weighted_sum[slot] = L::reduce_sum(sum_ex.combined(add));
    if constexpr (kWeightedSums) {
      p.weighted_logit_sum = L::reduce_sum(sum_wx.combined(add));
      if constexpr (kDense) p.weight_total = L::reduce_sum(sum_w.combined(add));
    }
  };
  if constexpr (kScaled) {
    if (!(scale > acc_t(0))) return pass(std::true_type{});
  }
  pass(std::false_type{});
}

// The gradient pass: dl/do for the row's columns, written once in the input's
// dtype, element_gradient vector by vector and gradient_at() at the target
// and the special element (row_finish.h). z_vector(j, count) gives z_j ...
// z_{j+count-1} in its first lanes (row_loss.h: e_j for softmax losses, the
// logit otherwise) and z_at(j) one of them; the target's and the special
// element's are read before the row is written, so the gradient may alias the
// input (each vector's logits are read before its gradient is written).
// global_target is the row's target class.
template <typename Loss, typename scalar_t, typename acc_t, typename ZVector, typename ZAt>
LOSSEXT_ALWAYS_INLINE void write_gradient(const CpuRow<scalar_t, acc_t>& r, const RowGradient<Loss, acc_t>& g,
                                          int64_t global_target, bool stream, ZVector&& z_vector, ZAt&& z_at) {
  using L = Lane<acc_t>;
  using V = typename L::type;
  constexpr int64_t W = L::kWidth;
  const bool has_target = (Loss::kNeeds & kDenseTarget) == 0 && r.target >= 0;
  const int64_t special = g.special_index - r.first_class;
  const bool has_special = g.special_index >= 0 && special >= 0 && special < r.columns;
  const acc_t z_target = has_target ? z_at(r.target) : acc_t(0);
  const acc_t z_special = has_special ? z_at(special) : acc_t(0);
  const acc_t* w = r.weight;
  // A capped loss's gradient is taken through the cap: times do'/do (row_loss.h, kLogitSoftcap).
  const bool capped = r.logit_softcap > acc_t(0);
  const acc_t slope_target = has_target && capped ? r.slope_at(r.target) : acc_t(1);
  const acc_t slope_special = has_special && capped ? r.slope_at(special) : acc_t(1);
  write_row<L>(r.grad, r.columns, stream, [&](int64_t j, int64_t count) {
    const V wj = w ? (count == W ? L::load(w + j) : L::load_partial(w + j, count, acc_t(0))) : V(acc_t(1));
    const V gradient = Loss::template element_gradient<V, acc_t>(z_vector(j, count), wj, g.coefficients);
    return capped ? gradient * r.slope(j, count) : gradient;
  });
  if (has_target) {
    r.grad[r.target] = static_cast<scalar_t>(
        gradient_at<Loss>(global_target, z_target, r.weight_at(r.target), global_target, g) * slope_target);
  }
  if (has_special) {
    r.grad[special] = static_cast<scalar_t>(
        gradient_at<Loss>(g.special_index, z_special, r.weight_at(special), global_target, g) * slope_special);
  }
}

// One row of a kElementwiseGradient loss (row_loss.h) in a single pass: each
// logit is read once and its gradient written at once, the target's last.
// The target's logit is read before the pass (open_row), so grad may alias
// the input. Fills s.element_sum; returns the row's value().
template <typename Loss, typename scalar_t, typename acc_t>
LOSSEXT_ALWAYS_INLINE acc_t run_elementwise_gradient_row(const CpuRow<scalar_t, acc_t>& r, bool stream,
                                                         RowStats<acc_t>& s, const typename Loss::Params& params,
                                                         const ReductionInfo<acc_t>& reduction, acc_t upstream,
                                                         acc_t* row_param_grads) {
  using L = Lane<acc_t>;
  using V = typename L::type;
  constexpr int64_t W = L::kWidth;
  const int64_t target = r.target;
  const auto g = row_gradient<Loss>(s, params, reduction, upstream, row_param_grads);
  V sum(acc_t(0));
  write_row<L>(r.grad, r.columns, stream, [&](int64_t j, int64_t count) {
    const V wj = r.weight ? L::load_partial(r.weight + j, count, acc_t(0)) : V(acc_t(1));
    V gradient;
    V term = Loss::template element_value_and_gradient<V, acc_t>(L::load_partial(r.input + j, count, acc_t(0)), wj,
                                                                  g.coefficients, gradient);
    // The target's lane, if it is in this vector (unsigned: j > target wraps to a huge value).
    if (static_cast<uint64_t>(target - j) < static_cast<uint64_t>(W)) term = L::with_lane_zeroed(term, target - j);
    sum = sum + (count == W ? term : L::keep_first(count, term, acc_t(0)));
    return gradient;
  });
  s.element_sum = L::reduce_sum(sum);
  r.grad[target] = static_cast<scalar_t>(gradient_at<Loss>(target, s.target_logit, s.target_weight, target, g));
  return Loss::value(s, params, reduction);
}

// Row `row` of a call before it is read: where it is, its target, and the
// statistics that come from there (target logit and weight, class weight
// total, the tensor params). Ignored rows (target == ignore_index) are
// finished here: they contribute nothing and get a zero gradient
// (F.nll_loss); their row_param_grads stay as the op allocated them, zero.
template <typename scalar_t, typename acc_t>
struct OpenedRow {
  CpuRow<scalar_t, acc_t> row;
  RowStats<acc_t> stats;
  acc_t upstream;
  bool ignored;
};

template <typename Loss, typename scalar_t, typename acc_t, typename target_t>
LOSSEXT_ALWAYS_INLINE OpenedRow<scalar_t, acc_t> open_row(int64_t row, int64_t num_classes,
                                                          const RowLossPointers<scalar_t, acc_t, target_t>& ptr,
                                                          acc_t class_weight_total, int64_t ignore_index) {
  constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
  const int64_t C = num_classes;
  OpenedRow<scalar_t, acc_t> o;
  CpuRow<scalar_t, acc_t>& r = o.row;
  r.input = ptr.input + row * ptr.input_row_stride;
  r.grad = ptr.grad_input ? ptr.grad_input + row * C : nullptr;
  r.weight = kDense ? ptr.dense_coefficients + row * C : ptr.class_weight;
  r.columns = C;
  r.first_class = 0;
  r.target = kDense ? 0 : static_cast<int64_t>(ptr.target[row]);
  r.logit_softcap = ptr.logit_softcap;
  o.ignored = !kDense && r.target == ignore_index;
  if (o.ignored) {
    ptr.row_values[row] = acc_t(0);
    if (r.grad) std::fill(r.grad, r.grad + C, scalar_t(0));
    return o;
  }
  RowStats<acc_t>& s = o.stats;
  s.num_classes = C;
  s.tensor_params = ptr.tensor_params;
  s.class_weight_total = class_weight_total;  // a dense row's is its own sum, from pass 2
  if constexpr (!kDense) {
    s.target_logit = r.logit(r.target);
    s.target_weight = r.weight_at(r.target);
  }
  o.upstream = ptr.upstream ? ptr.upstream[row * ptr.upstream_stride] : acc_t(1);
  return o;
}

template <typename Loss, typename scalar_t, typename acc_t, typename target_t>
void run_rows(int64_t row_begin, int64_t row_end, int64_t num_classes,
              const RowLossPointers<scalar_t, acc_t, target_t>& ptr, const typename Loss::Params& params,
              const ReductionInfo<acc_t>& reduction, acc_t class_weight_total, int64_t ignore_index) {
  using L = Lane<acc_t>;
  using Partial = RowPartial<Loss, acc_t>;
  constexpr unsigned kNeeds = Loss::kNeeds;
  constexpr bool kSoftmaxLoss = (kNeeds & kSoftmax) != 0;
  constexpr int kTensorParams = TensorParamCount<Loss>::value;
  static_assert((kNeeds & kElementwiseGradient) == 0 ||
                    ((kNeeds & kElementSum) != 0 && (kNeeds & (kSoftmax | kMaxOther | kDenseTarget)) == 0),
                "kElementwiseGradient is for kElementSum losses without softmax, max-other or dense targets");
  // The cap is applied where the passes read logits for a softmax; the max-other
  // scan, element sums and scaled softmax read them their own ways.
  static_assert((kNeeds & kLogitSoftcap) == 0 ||
                    ((kNeeds & kSoftmax) != 0 && (kNeeds & (kMaxOther | kElementSum | kScaledSoftmax)) == 0),
                "kLogitSoftcap is for softmax losses without max-other, element sums or a scaled softmax");
  constexpr int64_t W = L::kWidth;
  const int64_t C = num_classes;

  // exp(s (o_j - m)) of the current row, for the gradient pass (softmax
  // losses), with a vector's room past the end: the gradient pass loads whole
  // vectors from any j < C (write_row's partial vectors at the row's ends).
  std::vector<acc_t> exp_row(kSoftmaxLoss ? static_cast<size_t>(C + W) : 0);
  acc_t* e_row = exp_row.data();
  // Pass 2 prefetches the next row when it and this row's buffers fit in L2
  // together (2 MiB per core here, 1 MiB on most x86 cores).
  constexpr int64_t kPrefetchRowBytes = int64_t(256) << 10;
  const bool prefetch_next_row = C * static_cast<int64_t>(sizeof(scalar_t)) <= kPrefetchRowBytes;
  // Pass 1 finds the min too when a row's scale may be negative (row_partial.h).
  bool may_take_negative_scale = false;
  if constexpr ((kNeeds & kScaledSoftmax) != 0) {
    for (const acc_t scale : candidate_logit_scales<Loss, acc_t>(ptr.tensor_params).value) {
      may_take_negative_scale = may_take_negative_scale || !(scale >= acc_t(0));
    }
  }

  for (int64_t row = row_begin; row < row_end; ++row) {
    OpenedRow<scalar_t, acc_t> opened = open_row<Loss>(row, C, ptr, class_weight_total, ignore_index);
    if (opened.ignored) continue;
    const CpuRow<scalar_t, acc_t>& r = opened.row;
    RowStats<acc_t>& s = opened.stats;
    acc_t* row_param_grads = kTensorParams > 0 && ptr.row_param_grads ? ptr.row_param_grads + row * kTensorParams
                                                                      : nullptr;
    if constexpr ((kNeeds & kElementwiseGradient) != 0) {
      if (r.grad) {
        ptr.row_values[row] = run_elementwise_gradient_row<Loss>(r, ptr.stream_gradient, s, params, reduction,
                                                                 opened.upstream, row_param_grads);
        continue;
      }
    }

    // Gather the statistics and finish them: pass 1, the scale (kScaledSoftmax), pass 2.
    Partial partial = Partial::empty();
    gather_first_pass<Loss>(r, partial, params, may_take_negative_scale);
    partial.fill_statistics(s);
    choose_logit_scale<Loss>(s, params, partial.min_logit);
    if constexpr (kSoftmaxLoss) {
      const char* next_row = prefetch_next_row && row + 1 < row_end
                                 ? reinterpret_cast<const char*>(r.input + ptr.input_row_stride)
                                 : nullptr;
      gather_exp_sums<Loss, /*kStoreExp*/ true, /*kWeightedSums*/ true>(r, partial, 0, s.logit_scale, s.max_logit,
                                                                         e_row, next_row);
      partial.fill_exp_sums(s);
    }

    // Value and coefficients, then pass 3: the gradient. z_j is e_j for
    // softmax losses and the logit otherwise.
    ptr.row_values[row] = Loss::value(s, params, reduction);
    if (!r.grad) continue;
    const auto g = row_gradient<Loss>(s, params, reduction, opened.upstream, row_param_grads);
    if constexpr (kSoftmaxLoss) {
      // The loss folded its gradient scale into the exponent (row_loss.h): e_j
      // becomes exp(s (o_j - m) + shift), from the row in cache, with the
      // general exp, which neither flushes early nor clamps a sum it overflows.
      if (g.exp_shift != acc_t(0)) {
        using V = typename L::type;
        const V m(s.max_logit), scale(s.logit_scale), shift(g.exp_shift);
        for (int64_t j = 0; j < C; j += W) {
          const V logits = j + W <= C ? r.logits(j) : r.logits(j, C - j, -infinity<acc_t>());
          L::store(e_row + j, exponential(scale * (logits - m) + shift));
        }
      }
    }
    const auto z_vector = [&](int64_t j, int64_t count) {
      if constexpr (kSoftmaxLoss) return L::load(e_row + j);  // padded to a whole vector
      return count == W ? L::load_converted(r.input + j) : L::load_partial(r.input + j, count, acc_t(0));
    };
    const auto z_at = [&](int64_t j) { return kSoftmaxLoss ? e_row[j] : static_cast<acc_t>(r.input[j]); };
    write_gradient<Loss>(r, g, r.target, ptr.stream_gradient, z_vector, z_at);
  }
  if (ptr.stream_gradient) streaming_fence();  // before at::parallel_for reports this chunk done
}

struct CpuRowLossDriver {
  // Sum of w_t over the rows that are not ignored (the row count for dense
  // losses), in double; also the check that every target is a valid class,
  // made here, before any kernel runs, so it raises IndexError like F.nll_loss.
  template <typename target_t>
  static double checked_target_weight_sum(const RowLossProblem& p) {
    const target_t* target = p.target.data_ptr<target_t>();
    const bool has_weight = p.class_weight.defined();
    const at::Tensor weight = has_weight ? p.class_weight.to(at::kDouble) : at::Tensor();
    const double* w = has_weight ? weight.data_ptr<double>() : nullptr;
    double total = 0;
    for (int64_t i = 0; i < p.rows; ++i) {
      const int64_t t = static_cast<int64_t>(target[i]);
      if (t == p.ignore_index) continue;
      TORCH_CHECK_INDEX(t >= 0 && t < p.classes, "Target ", t, " is out of bounds: a class index must be in [0, ",
                        p.classes, ") for ", p.classes, " classes, or ignore_index (", p.ignore_index, ")");
      total += w ? w[t] : 1.0;
    }
    return total;
  }

  static at::Tensor target_weight_sum(const RowLossProblem& p) {
    const auto acc = accumulation_dtype(p.input.scalar_type());
    if (p.target.dim() == 2) return at::scalar_tensor(static_cast<double>(p.rows), at::dtype(acc));
    double total = 0;
    switch (p.target.scalar_type()) {
      case at::kLong: total = checked_target_weight_sum<int64_t>(p); break;
      case at::kInt: total = checked_target_weight_sum<int32_t>(p); break;
      default: total = checked_target_weight_sum<uint8_t>(p); break;
    }
    return at::scalar_tensor(total, at::dtype(acc));
  }

  template <typename Loss>
  static void run(const RowLossProblem& p, const typename Loss::Params& params,
                  const at::Tensor& target_weight_sum, const at::Tensor& upstream, at::Tensor& row_values,
                  at::Tensor& grad_input, at::Tensor& row_param_grads) {
    constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.input.scalar_type(), "lossext_row_loss_cpu", [&] {
      using acc_t = accumulation_t<scalar_t>;
      ReductionInfo<acc_t> reduction;
      reduction.reduction = p.reduction;
      reduction.target_weight_sum = target_weight_sum.item<acc_t>();
      reduction.total_rows = p.rows;
      const acc_t* class_weight = p.class_weight.defined() ? p.class_weight.data_ptr<acc_t>() : nullptr;
      const acc_t class_weight_total =
          class_weight ? sum_in_fixed_order(p.class_weight).item<acc_t>() : static_cast<acc_t>(p.classes);

      auto launch = [&](auto target_tag) {
        using target_t = decltype(target_tag);
        RowLossPointers<scalar_t, acc_t, target_t> ptr;
        ptr.input = p.input.data_ptr<scalar_t>();
        ptr.input_row_stride = p.input.stride(0);
        ptr.target = kDense ? nullptr : p.target.data_ptr<target_t>();
        ptr.class_weight = class_weight;
        ptr.dense_coefficients = kDense ? p.target.data_ptr<acc_t>() : nullptr;
        ptr.upstream = upstream.defined() ? upstream.data_ptr<acc_t>() : nullptr;
        ptr.upstream_stride = (upstream.defined() && upstream.numel() > 1) ? 1 : 0;
        ptr.row_values = row_values.data_ptr<acc_t>();
        ptr.grad_input = grad_input.numel() > 0 ? grad_input.data_ptr<scalar_t>() : nullptr;
        ptr.stream_gradient =
            ptr.grad_input != nullptr &&
            use_streaming_stores(ptr.grad_input, static_cast<int64_t>(grad_input.nbytes()));
        ptr.tensor_params = p.tensor_params.defined() ? p.tensor_params.data_ptr<acc_t>() : nullptr;
        ptr.row_param_grads = row_param_grads.numel() > 0 ? row_param_grads.data_ptr<acc_t>() : nullptr;
        ptr.logit_softcap = static_cast<acc_t>(p.logit_softcap);
        // About 64 KiB of logits per task, so small-C batches still amortise
        // the task overhead and large-C rows spread over all threads.
        const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / p.classes);
        at::parallel_for(0, p.rows, grain, [&](int64_t begin, int64_t end) {
          run_rows<Loss, scalar_t, acc_t, target_t>(begin, end, p.classes, ptr, params, reduction,
                                                    class_weight_total, p.ignore_index);
        });
      };
      if (kDense) {
        launch(int64_t{});
      } else if (p.target.scalar_type() == at::kLong) {
        launch(int64_t{});
      } else if (p.target.scalar_type() == at::kInt) {
        launch(int32_t{});
      } else {
        launch(uint8_t{});
      }
    });
  }
};

}  // namespace cpu
}  // namespace lossext
