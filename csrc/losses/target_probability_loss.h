// Losses of the softmax that see the row only through the target's
// log-probability u = log p_t = (o_t - m) - log S:   l = phi(u).
// (Expectation, Chebyshev and squared log loss of Janocha & Czarnecki 2017,
// Table 1, and the alpha-loss of Sypherd et al.; cross-entropy is phi(u) = -u.)
// With du/do_k = [k == t] - p_k (the softmax backward, Tomasi 2019),
//   dl/do_k = -phi'(u) p_k = -phi'(u) e_k / S    (k != t)
//   dl/do_t =  phi'(u) (1 - p_t),
// with 1 - p_t = -expm1(u), which keeps its accuracy as p_t -> 1 where
// p_t - 1 would cancel. u comes from log-sum-exp, so it stays finite when p_t
// underflows. A loss derives from TargetProbabilityLoss<Loss> and supplies
// loss_at(u, params) = phi(u) and slope_at(u, params) = phi'(u).
#pragma once

#include "row_loss.h"

namespace lossext {

template <typename Loss>
struct TargetProbabilityLoss {
  static constexpr unsigned kNeeds = kSoftmax;

  template <typename T>
  struct Coefficients {
    T probability_scale;  // -phi'(u) / S, scaled
    T target_gradient;    // phi'(u) (1 - p_t), scaled
  };

  template <typename T, typename Params>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params& params, const ReductionInfo<T>& reduction) {
    return s.target_weight * Loss::loss_at(s.log_target_probability(), params) * reduction.weighted_scale();
  }

  template <typename T, typename Params>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params& params,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T scale = upstream * reduction.weighted_scale() * s.target_weight;
    const T slope = scale * Loss::slope_at(s.log_target_probability(), params);
    return Coefficients<T>{-slope / s.sum_exp, slope * s.target_probability_complement()};
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_gradient(V z, V, const Coefficients<T>& c) {
    return V(c.probability_scale) * z;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T target_gradient(T, T, const Coefficients<T>& c) {
    return c.target_gradient;
  }
};

}  // namespace lossext
