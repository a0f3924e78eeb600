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
// loss_at(u, params) = phi(u), slope_at(u, params) = phi'(u) <= 0 and
// log_minus_slope_at(u, params) = log(-phi'(u)), the same in log space.
//
// The non-target gradient is K e_k with K = -phi'(u) / S (times the upstream
// scale). Where |K| > 1 (the alpha-loss with alpha < 1 and a small p_t) it is
// computed as sign(K) exp((o_k - m) + log|K|) (row_loss.h, exp_shift), with
// log|K| = log(-phi'(u)) + log|scale| - log S: exact where e_k underflows
// (K = e^88, e_k = e^-88 gives 1) and finite where K alone overflows.
#pragma once

#include "row_loss.h"

namespace lossext {

template <typename Loss>
struct TargetProbabilityLoss {
  static constexpr unsigned kNeeds = kSoftmax;

  template <typename T>
  struct Coefficients {
    T probability_scale;  // -phi'(u) / S, scaled; its sign alone when exp_shift != 0
    T target_gradient;    // phi'(u) (1 - p_t), scaled
    T exp_shift;          // 0, or log|probability_scale| (row_loss.h)
  };

  template <typename T, typename Params>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params& params, const ReductionInfo<T>& reduction) {
    return s.target_weight * Loss::loss_at(s.log_target_probability(), params) * reduction.weighted_scale();
  }

  template <typename T, typename Params>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params& params,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T scale = upstream * reduction.weighted_scale() * s.target_weight;
    const T log_p = s.log_target_probability();
    const T slope = scale * Loss::slope_at(log_p, params);
    Coefficients<T> c{-slope / s.sum_exp, slope * s.target_probability_complement(), T(0)};
    if (absolute(c.probability_scale) > T(1)) {
      c.exp_shift = Loss::log_minus_slope_at(log_p, params) + logarithm(absolute(scale)) - logarithm(s.sum_exp);
      c.probability_scale = scale < T(0) ? T(-1) : T(1);
    }
    return c;
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
