// The contract between a row loss and the drivers that run it.
//
// A "row loss" maps one row of logits o (length C) and a class-index target t
// to a scalar l(o, t), and its gradient dl/do to a row of length C. Every loss
// in lossext that takes class-index targets is written as a struct in its own
// header under csrc/losses/, and both drivers (csrc/cpu/row_loss_driver.h and
// csrc/cuda/row_loss_driver.cuh) include it. The drivers own memory traffic,
// threading, dtypes and reductions; the loss struct owns only the math.
//
// The driver gathers, in as few passes over the row as the loss needs, the
// statistics in RowStats (flags in Loss::kNeeds say which), then asks the loss
//   value(stats, params, reduction)          -> the row's contribution to the output
//   coefficients(stats, params, reduction, upstream)
//                                            -> per-row constants of dl/do
//   element_gradient(z, w, coeffs)           -> dl/do_j for j != t (and j not
//                                               the "special" index below)
//   target_gradient(z_t, w_t, coeffs)        -> dl/do_t
// where z_j is e_j = exp(o_j - max) for softmax losses (kSoftmax) and the raw
// logit o_j otherwise, and w_j the class weight (1 without weights).
// value() returns the row's contribution to the op's output: w_t l times the
// reduction's scale (ReductionInfo::weighted_scale), so a mean or sum is the
// plain sum of the rows' values; coefficients() gets the gradient of the
// output `upstream` and folds it in. element_gradient is a template over the value type V so
// the CPU driver can run it on 8-wide SIMD vectors and the CUDA driver on
// scalars; everything else is scalar code in the accumulation type T (float
// for float/half/bfloat16 inputs, double for double inputs).
//
// Losses without a softmax whose value is a sum over elements (hinge, L1, L2)
// set kElementSum and provide element_value(z, params) (the summand for
// j != t, a template over V like element_gradient); the driver puts
// sum_{j != t} element_value(o_j, params) in RowStats::element_sum, the target
// left out, and value() adds the target's own term. (Summing over the whole
// row and subtracting element_value(o_t) afterwards would cancel
// catastrophically: for hinge^3 at a confident o_t = 100 the target's
// summand is 10^6 while the loss is the rest, below its rounding error, and
// at o_t = +inf it would be inf - inf.)
//
// Losses whose coefficients() read nothing from RowStats but what is known
// before the row is read (target_logit, target_weight, num_classes) set
// kElementwiseGradient with kElementSum, and provide
//   element_value_and_gradient(z, w, coeffs, gradient&) -> element_value(z),
// which also writes element_gradient(z, w, coeffs) into `gradient`, sharing
// their work (hinge^p's power). A driver may then write each element's
// gradient in the pass that sums element_value: the CPU driver reads every
// logit once and keeps no scratch row. value() still runs after the pass.
//
// Losses that read the largest non-target logit (the two-scale loss's
// margin) set kMaxOther. Those whose gradient also has a third kind of
// element, at that logit's class (not Chebyshev, whose max_j |p_j - y_j| is
// always attained at the target, see chebyshev.h; not the two-scale loss,
// whose scale switch carries no gradient), add kMaxOtherIndex: the driver
// also finds its index, and asks special_gradient(z_s, w_s, coeffs) for that
// one element when coeffs.special_index_used is true.
//
// A loss whose params can be invalid (hinge's p < 1, a negative alpha) also
// provides the host-only `static const char* param_error(const double* values)`:
// nullptr when the values are valid, otherwise what is wrong, naming the
// parameter. The op layer (row_loss_op.h) raises it as an error before any
// driver runs, so headers stay free of torch and of exceptions.
//
// Losses whose value cancels when computed from full-row sums (the
// regularised expectation's sum_{j != t} p_j^2 = P2 - p_t^2 as p_t -> 1) set
// kOtherClassSums: RowStats then also holds sum_exp_other and
// sum_exp_squared_other, the same sums with the target's term left out of the
// accumulation, so 1 - p_t = sum_exp_other / S and sum_{j != t} p_j^2 keep
// their relative accuracy however close p_t is to 1. RowPartial's exp sums
// (and so a block's packed statistics) are then the other classes' sums;
// fill_exp_sums adds the target's term once for sum_exp and sum_exp_squared
// (row_partial.h).
//
// The gradient of a softmax loss is often K e_j for k != t with a per-row
// K. The CPU driver flushes e_j below e^-87 to zero (csrc/cpu/vec/math.h), which
// drops at most |K| e^-87: nothing a float holds while |K| <= 1. A loss whose K
// can be larger (the alpha-loss with alpha < 1, where K ~ p_t^beta, beta < 0)
// may give its Coefficients a member `exp_shift`: when it is not 0, the
// drivers pass z_j = exp(s (o_j - m) + exp_shift) to the gradient functions
// in place of e_j, so the loss folds log|K| into the exponent and keeps a
// gradient that e_j alone would have lost (or that K alone would overflow).
//
// Losses with kDenseTarget take an (N, C) row of per-class coefficients in
// place of the class weights and no target index (soft-target cross-entropy);
// their mean divides by the number of rows.
//
// Losses with learnable scalars (the two-scale loss's r1, r2 and R) declare
// kNumTensorParams: the op then takes those scalars as a 1-D tensor (which
// may require grad; on CUDA it stays in device memory, so reading it needs no
// host sync), the driver points RowStats::tensor_params at it, and
// param_gradients(stats, params, reduction, upstream, out) writes the row's
// kNumTensorParams partial derivatives d(row's contribution)/d(param_k). The
// drivers write them per row and the caller sums the rows, so the reduction
// is deterministic. Such a loss may also set kScaledSoftmax: it declares
// kNumLogitScales candidate scales, candidate_logit_scale(k, tensor_params),
// and logit_scale_index(stats, params), which one a row takes given the
// statistics that need no exponential; the driver then takes the softmax of
// s * o (z_j = exp(s (o_j - m)), m the max of o for s >= 0 and its min for
// s < 0, -inf logits excluded; csrc/losses/row_partial.h). kExpWeightedLogitSum
// adds sum_j z_j (o_j - m), from which sum_j p_j o_j = m + that / S.
//
// Losses with kLogitSoftcap (cross-entropy's logit_softcap, Gemma 2's soft-capping,
// Gemma Team 2024, sec. 2) take their softmax of o'_j = c tanh(o_j / c) when
// Loss::logit_softcap(params) = c > 0: the drivers map every logit as they
// read it (the CPU driver's CpuRow::logits, the CUDA driver's loss_logit), so RowStats hold the statistics
// of o' and z_j is exp(o'_j - m), and they multiply every element of the
// gradient by do'_j/do_j = 1 - (o'_j / c)^2 (capped_logit_slope). c = 0 reads
// the logits as they are. The op layer puts c in RowLossProblem::logit_softcap.
//
// The statistics of a row can be gathered in parts and combined in any order
// (RowPartial, csrc/losses/row_partial.h), and once they are known the drivers
// finish a row with row_gradient() and gradient_at() (csrc/losses/row_finish.h).
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "common/macros.h"
#include "common/scalar_math.h"

namespace lossext {

// Which statistics a loss needs from the driver (bit flags in Loss::kNeeds).
enum RowNeeds : unsigned {
  kSoftmax = 1u << 0,         // max_logit, sum_exp; z_j = exp(o_j - max)
  kSumExpSquared = 1u << 1,   // sum_exp_squared = sum_j exp(2 (o_j - max))
  kMaxOther = 1u << 2,        // max_other_logit = max_{j != t} o_j
  kElementSum = 1u << 3,      // element_sum = sum_{j != t} element_value(o_j)
  kSmoothingSum = 1u << 4,    // weighted_logit_sum = sum_j w_j (o_j - m), class_weight_total = sum_j w_j
  kDenseTarget = 1u << 5,     // w is a per-row (N, C) tensor; no target index
  kScaledSoftmax = 1u << 6,   // softmax of logit_scale(stats, params) * o
  kExpWeightedLogitSum = 1u << 7,  // exp_weighted_logit_sum = sum_j z_j (o_j - m)
  kElementwiseGradient = 1u << 8,  // with kElementSum: the gradient needs no row statistic
  kMaxOtherIndex = 1u << 9,   // with kMaxOther: max_other_index, and special_gradient there
  kOtherClassSums = 1u << 10,  // sum_exp_other (and sum_exp_squared_other) over j != t; not with
                               // kDenseTarget or kExpWeightedLogitSum
  kLogitSoftcap = 1u << 11,    // the softmax of c tanh(o / c), c = Loss::logit_softcap(params) (0: of o)
};

// do'/do = 1 - tanh^2(o / c) = (1 - o'/c)(1 + o'/c) from the capped logit o', 1 for c = 0.
template <typename T>
LOSSEXT_HOST_DEVICE T capped_logit_slope(T capped, T cap) {
  if (!(cap > T(0))) return T(1);
  const T ratio = capped / cap;
  return (T(1) - ratio) * (T(1) + ratio);
}

// The loss's logit cap c for these params: Loss::logit_softcap(params) with kLogitSoftcap, else 0.
template <typename Loss>
double logit_softcap_of(const typename Loss::Params& params) {
  if constexpr ((Loss::kNeeds & kLogitSoftcap) != 0) {
    return Loss::logit_softcap(params);
  } else {
    return 0.0;
  }
}

// Whether a loss's Coefficients carry exp_shift (see above).
template <typename Coefficients, typename = void>
struct HasExpShift : std::false_type {};
template <typename Coefficients>
struct HasExpShift<Coefficients, std::void_t<decltype(std::declval<Coefficients>().exp_shift)>> : std::true_type {};

// Loss::kNumTensorParams, or 0 for a loss that declares none.
template <typename Loss, typename = void>
struct TensorParamCount {
  static constexpr int value = 0;
};
template <typename Loss>
struct TensorParamCount<Loss, decltype(void(Loss::kNumTensorParams))> {
  static constexpr int value = Loss::kNumTensorParams;
};

// Per-row statistics, in the accumulation type T.
template <typename T>
struct RowStats {
  int64_t num_classes = 0;
  T target_logit = 0;         // o_t (always gathered)
  T max_logit = 0;            // m = max_j o_j (kSoftmax; kScaledSoftmax: its scale's reference)
  T sum_exp = 0;              // S = sum_j exp(o_j - m)       (kSoftmax)
  T sum_exp_squared = 0;      // S2 = sum_j exp(2 (o_j - m))  (kSumExpSquared)
  T sum_exp_other = 0;        // sum_{j != t} exp(o_j - m)    (kOtherClassSums)
  T sum_exp_squared_other = 0;  // sum_{j != t} exp(2 (o_j - m)) (kOtherClassSums with kSumExpSquared)
  T max_other_logit = 0;      // max_{j != t} o_j, -inf if C == 1 (kMaxOther)
  int64_t max_other_index = -1;  // its first class (kMaxOtherIndex)
  T element_sum = 0;          // sum_{j != t} element_value(o_j) (kElementSum)
  T weighted_logit_sum = 0;   // sum_j w_j (o_j - m)          (kSmoothingSum)
  T class_weight_total = 0;   // sum_j w_j                    (kSmoothingSum)
  T target_weight = 1;        // w_t (1 without class weights)
  T logit_scale = 1;          // s of kScaledSoftmax (1 otherwise)
  T exp_weighted_logit_sum = 0;  // sum_j z_j (o_j - m)         (kExpWeightedLogitSum)
  // Not a statistic: the call's learnable scalars (kNumTensorParams of them),
  // in host memory for the CPU driver and device memory for the CUDA driver.
  const T* tensor_params = nullptr;

  // log-sum-exp of the (scaled) row: lse = s m + log S. Used instead of log(softmax) so
  // that log p_t = o_t - lse stays finite when p_t underflows to zero.
  LOSSEXT_HOST_DEVICE T log_sum_exp() const { return logit_scale * max_logit + logarithm(sum_exp); }
  // log p_t = s o_t - lse, finite when p_t underflows (o_t finite).
  LOSSEXT_HOST_DEVICE T log_target_probability() const {
    return logit_scale * (target_logit - max_logit) - logarithm(sum_exp);
  }
  // p_t = exp(o_t - lse), computed from the logit so it is exact when S is large.
  LOSSEXT_HOST_DEVICE T target_probability() const { return exponential(log_target_probability()); }
  // 1 - p_t = -expm1(log p_t): accurate as p_t -> 1, where 1 - p_t would cancel.
  LOSSEXT_HOST_DEVICE T target_probability_complement() const {
    return -exponential_minus_one(log_target_probability());
  }
  // sum_j p_j^2 = S2 / S^2
  LOSSEXT_HOST_DEVICE T sum_probability_squared() const { return sum_exp_squared / (sum_exp * sum_exp); }
};

// How per-row losses are combined, as torch's `reduction` argument.
enum class Reduction : int64_t { None = 0, Mean = 1, Sum = 2 };

// What a reduction divides by. The drivers fill it before the main pass so the
// gradient can be written scaled in the same pass.
template <typename T>
struct ReductionInfo {
  Reduction reduction = Reduction::Mean;
  T target_weight_sum = 0;  // sum of w_t over rows whose target != ignore_index
                            // (the row count for kDenseTarget losses)
  int64_t total_rows = 0;   // all rows, ignored ones included

  // Scale of a row's (already w_t-weighted) loss in the reduced output: the
  // weighted mean of F.cross_entropy / F.nll_loss divides by sum w_t.
  LOSSEXT_HOST_DEVICE T weighted_scale() const {
    return reduction == Reduction::Mean ? T(1) / target_weight_sum : T(1);
  }
};

// The params of a loss that has none: a loss derives from NoParams as well.
struct NoParams {
  static constexpr int kNumParams = 0;
  struct Params {};
  static Params make_params(const double*) { return Params{}; }
};

}  // namespace lossext
