// Cross-entropy with class weights and label smoothing, as F.cross_entropy,
// and PaLM's z-loss (Chowdhery et al. 2022, sec. 5: z lse^2 per row, which keeps
// the log-normaliser near 0).
//
// With p = softmax(o), lse = log sum_j exp(o_j), class weights w (all ones when
// none are given), smoothing eps and C classes, one row's loss is
//   l = (1 - eps) w_t (lse - o_t) + (eps / C) sum_j w_j (lse - o_j) + z w_t lse^2
// (Tomasi 2019, the cross-entropy of the softmax; the smoothing term is the
// cross-entropy against the uniform distribution, PyTorch's definition; the
// z-loss weighted by w_t like the rest, so a weighted mean stays one).
// Its gradient (Tomasi 2019, softmax backward: dl/do = p - y; d lse/do = p) is
//   dl/do_k = (1 - eps) w_t (p_k - y_k) + (eps / C) (W p_k - w_k) + 2 z w_t lse p_k,  W = sum_j w_j
//           = A e_k - B w_k - [k == t] D
// with e_k = exp(o_k - m), A = ((1 - eps) w_t + eps W / C + 2 z w_t lse) / S,
// B = eps / C, D = (1 - eps) w_t. Both the weighted and the unweighted mean divide by the
// sum of w_t over the rows that are not ignored (the count of those rows
// without weights), for the smoothing term as for the main one.
//
// lse - o_t is evaluated as (m - o_t) + log S and the smoothing sum as
// W log S - sum_j w_j (o_j - m), so no large logit is subtracted from another
// large number and log p_t stays finite when p_t underflows.
#pragma once

#include <limits>

#include "row_loss.h"

namespace lossext {

// The parameters of both cross-entropy ops (class indices here, probabilities in
// cross_entropy_probabilities.h), in the order lossext.cross_entropy passes them.
// logit_softcap c > 0 takes the loss of c tanh(o / c) (Gemma 2), the drivers'
// kLogitSoftcap (row_loss.h); 0 for none.
struct CrossEntropyParams {
  static constexpr int kCount = 3;
  double label_smoothing;
  double z_loss;
  double logit_softcap;
  static CrossEntropyParams from(const double* values) {
    return CrossEntropyParams{values[0], values[1], values[2]};
  }
  // The one invalid value the kernels could be given: a cap that is negative, infinite or NaN.
  static const char* error(const double* values) {
    const double cap = values[2];
    return cap == 0.0 || (cap > 0.0 && cap < std::numeric_limits<double>::infinity())
               ? nullptr
               : "logit_softcap must be 0 (none) or positive and finite";
  }
};

struct CrossEntropy {
  static constexpr unsigned kNeeds = kSoftmax | kSmoothingSum | kLogitSoftcap;
  static constexpr const char* kName = "cross_entropy";
  static constexpr int kNumParams = CrossEntropyParams::kCount;

  using Params = CrossEntropyParams;
  static Params make_params(const double* values) { return Params::from(values); }
  static const char* param_error(const double* values) { return Params::error(values); }
  static double logit_softcap(const Params& params) { return params.logit_softcap; }

  template <typename T>
  struct Coefficients {
    T probability_scale;  // A
    T weight_scale;       // B
    T target_offset;      // D
  };

  template <typename T>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params& params,
                                     const ReductionInfo<T>& reduction) {
    const T eps = T(params.label_smoothing);
    const T log_sum = logarithm(s.sum_exp);
    const T nll = (s.max_logit - s.target_logit) + log_sum;
    T row = (T(1) - eps) * s.target_weight * nll;
    if (eps != T(0)) {
      const T smooth = s.class_weight_total * log_sum - s.weighted_logit_sum;
      row += eps / T(s.num_classes) * smooth;
    }
    if (params.z_loss != 0.0) {
      const T lse = s.max_logit + log_sum;
      row += T(params.z_loss) * s.target_weight * lse * lse;
    }
    return row * reduction.weighted_scale();
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params& params,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T eps = T(params.label_smoothing);
    const T scale = upstream * reduction.weighted_scale();
    const T smoothing_per_class = eps / T(s.num_classes);
    Coefficients<T> c;
    c.target_offset = scale * (T(1) - eps) * s.target_weight;
    c.weight_scale = scale * smoothing_per_class;
    T probability_total = c.target_offset + c.weight_scale * s.class_weight_total;
    if (params.z_loss != 0.0) {
      const T lse = s.max_logit + logarithm(s.sum_exp);
      probability_total += scale * T(2 * params.z_loss) * s.target_weight * lse;
    }
    c.probability_scale = probability_total / s.sum_exp;
    return c;
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_gradient(V z, V class_weight, const Coefficients<T>& c) {
    return V(c.probability_scale) * z - V(c.weight_scale) * class_weight;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T target_gradient(T z, T class_weight, const Coefficients<T>& c) {
    return element_gradient<T, T>(z, class_weight, c) - c.target_offset;
  }
};

}  // namespace lossext
