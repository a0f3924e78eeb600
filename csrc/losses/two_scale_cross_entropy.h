// Two-scale cross-entropy (Berlyand, Creese & Jabin 2021, eq. 13).
//
// With X the logits of one row, t its class, R the network's size (eq. 9) and
// the margin delta = X_t - max_{j != t} X_j (the classification confidence
// delta X), the row uses the scale r = r1 if delta < eta and r = r2 otherwise,
// and its loss is the cross-entropy of s X with s = r / R (that is of r X^ with
// X^ = X / R, eq. 13). With one class there is no other logit: delta = +inf and
// the row counts as well classified.
//
// With p = softmax(s X) and m = max_j X_j (min_j X_j if s < 0, so that no
// exp(s (X_j - m)) overflows; row_partial.h):
//   l         = s (m - X_t) + log S,           S = sum_j exp(s (X_j - m))
//   dl/dX_k   = s (p_k - y_k)
//   dl/ds     = sum_j p_j X_j - X_t = (m - X_t) + E / S,  E = sum_j exp(s (X_j - m)) (X_j - m)
//   dl/dr     = dl/ds / R   (for the r the row used; eq. 15 is this for r2)
//   dl/dR     = -dl/ds r / R^2
// delta is piecewise constant in r1 and r2's choice, so the switch itself
// carries no gradient (it moves only when a row crosses delta = eta).
#pragma once

#include "row_loss.h"

namespace lossext {

struct TwoScaleCrossEntropy {
  static constexpr unsigned kNeeds = kSoftmax | kMaxOther | kScaledSoftmax | kExpWeightedLogitSum;
  static constexpr const char* kName = "two_scale_cross_entropy";
  static constexpr int kNumParams = 1;        // eta
  static constexpr int kNumTensorParams = 3;  // r1, r2, R (in that order)

  struct Params {
    double eta;
  };
  static Params make_params(const double* values) { return Params{values[0]}; }

  template <typename T>
  struct Coefficients {
    T probability_scale;  // upstream-scaled s / S
    T target_offset;      // upstream-scaled s
  };

  // The scale r of this row, r1 below the margin eta and r2 from it on.
  template <typename T>
  LOSSEXT_HOST_DEVICE static bool well_classified(const RowStats<T>& s, const Params& params) {
    const T margin = s.target_logit - s.max_other_logit;  // +inf with one class
    return !(margin < T(params.eta));
  }

  // The softmax scale s is one of two candidates (row_partial.h), r1 / R and
  // r2 / R, the second for well-classified rows.
  static constexpr int kNumLogitScales = 2;
  template <typename T>
  LOSSEXT_HOST_DEVICE static T candidate_logit_scale(int k, const T* tensor_params) {
    return tensor_params[k] / tensor_params[2];
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static int logit_scale_index(const RowStats<T>& s, const Params& params) {
    return well_classified(s, params) ? 1 : 0;
  }

  // s (m - X_t) + log S, with m the reference of s's exp sums (the max of X
  // for s >= 0, its min for s < 0, row_partial.h). A target logit of -inf is
  // an excluded class (p_t = 0) whatever the sign of s: the loss is +inf.
  template <typename T>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params&, const ReductionInfo<T>& reduction) {
    const T nll = s.target_logit == -infinity<T>()
                      ? infinity<T>()
                      : s.logit_scale * (s.max_logit - s.target_logit) + logarithm(s.sum_exp);
    return s.target_weight * nll * reduction.weighted_scale();
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params&,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T scale = upstream * reduction.weighted_scale() * s.target_weight * s.logit_scale;
    return Coefficients<T>{scale / s.sum_exp, scale};
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_gradient(V z, V, const Coefficients<T>& c) {
    return V(c.probability_scale) * z;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T target_gradient(T z, T class_weight, const Coefficients<T>& c) {
    return element_gradient<T, T>(z, class_weight, c) - c.target_offset;
  }

  // d(row's contribution)/d(r1, r2, R).
  template <typename T>
  LOSSEXT_HOST_DEVICE static void param_gradients(const RowStats<T>& s, const Params& params,
                                                  const ReductionInfo<T>& reduction, T upstream, T* out) {
    const T scale = upstream * reduction.weighted_scale() * s.target_weight;
    const T d_scale = scale * ((s.max_logit - s.target_logit) + s.exp_weighted_logit_sum / s.sum_exp);
    const T norm = s.tensor_params[2];
    const bool well = well_classified(s, params);
    const T r = well ? s.tensor_params[1] : s.tensor_params[0];
    out[0] = well ? T(0) : d_scale / norm;
    out[1] = well ? d_scale / norm : T(0);
    out[2] = -d_scale * r / (norm * norm);
  }
};

}  // namespace lossext
