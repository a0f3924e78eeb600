// Cross-entropy against class probabilities (soft targets), as F.cross_entropy
// with a floating-point target of the input's shape.
//
// The op folds class weights w and label smoothing eps into one coefficient row
// per sample before the kernel runs: c_j = w_j ((1 - eps) q_j + eps / C). Then
//   l = sum_j c_j (lse - o_j) + z lse^2 = W log S - sum_j c_j (o_j - m) + z lse^2,  W = sum_j c_j
//   dl/do_k = W p_k - c_k + 2 z lse p_k = ((W + 2 z lse) / S) e_k - c_k
// (z the z-loss, as cross_entropy.h's, unweighted: a soft row has no single w_t).
// There is no target index and no ignore_index; the mean divides by the number
// of rows, as PyTorch does for probability targets.
#pragma once

#include "cross_entropy.h"
#include "row_loss.h"

namespace lossext {

struct CrossEntropyProbabilities {
  static constexpr unsigned kNeeds = kSoftmax | kSmoothingSum | kDenseTarget | kLogitSoftcap;
  static constexpr const char* kName = "cross_entropy_probabilities";
  static constexpr int kNumParams = CrossEntropyParams::kCount;

  // label_smoothing is already folded into the coefficient row by the op
  // (row_loss_op.h, prepare_row_loss); the math below does not read it.
  using Params = CrossEntropyParams;
  static Params make_params(const double* values) { return Params::from(values); }
  static const char* param_error(const double* values) { return Params::error(values); }
  static double logit_softcap(const Params& params) { return params.logit_softcap; }

  template <typename T>
  struct Coefficients {
    T probability_scale;
    T weight_scale;
  };

  template <typename T>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params& params, const ReductionInfo<T>& reduction) {
    const T log_sum = logarithm(s.sum_exp);
    T row = s.class_weight_total * log_sum - s.weighted_logit_sum;
    if (params.z_loss != 0.0) {
      const T lse = s.max_logit + log_sum;
      row += T(params.z_loss) * lse * lse;
    }
    return row * reduction.weighted_scale();
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params& params,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T scale = upstream * reduction.weighted_scale();
    T probability_total = s.class_weight_total;
    if (params.z_loss != 0.0) probability_total += T(2 * params.z_loss) * (s.max_logit + logarithm(s.sum_exp));
    return Coefficients<T>{scale * probability_total / s.sum_exp, scale};
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_gradient(V z, V class_weight, const Coefficients<T>& c) {
    return V(c.probability_scale) * z - V(c.weight_scale) * class_weight;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T target_gradient(T z, T class_weight, const Coefficients<T>& c) {
    return element_gradient<T, T>(z, class_weight, c);
  }
};

}  // namespace lossext
