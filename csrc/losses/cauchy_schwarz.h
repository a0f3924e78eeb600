// The Cauchy-Schwarz divergence loss (Janocha & Czarnecki 2017, Table 1):
//   l = -log(sum_j p_j y_j / (||p|| ||y||)) = -log p_t + (1/2) log P2,
// cross-entropy plus half the log of P2 = sum_j p_j^2 (their Proposition 3;
// ||y|| = 1). In the row's statistics, log p_t = (o_t - m) - log S and
// P2 = S2 / S^2, so l = (m - o_t) + (1/2) log S2: no log of a probability,
// finite when p_t underflows, and S2 >= 1 (the max contributes e^0 = 1).
// It is the cross-entropy of q = softmax(2 o) against y, halved
// (q_k = e_k^2 / S2), so
//   dl/do_k = q_k - [k == t] = e_k^2 / S2                (k != t)
//   dl/do_t = -(1 - q_t) = expm1(2 (o_t - m) - log S2),
// the target's term from expm1 so it does not cancel as q_t -> 1.
#pragma once

#include "quadratic_softmax_gradient.h"

namespace lossext {

struct CauchySchwarz : QuadraticSoftmaxGradient, NoParams {
  static constexpr unsigned kNeeds = kSoftmax | kSumExpSquared;
  static constexpr const char* kName = "cauchy_schwarz";

  template <typename T>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params&, const ReductionInfo<T>& reduction) {
    const T row = (s.max_logit - s.target_logit) + T(0.5) * logarithm(s.sum_exp_squared);
    return s.target_weight * row * reduction.weighted_scale();
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params&,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T scale = upstream * reduction.weighted_scale() * s.target_weight;
    const T log_target_q = T(2) * (s.target_logit - s.max_logit) - logarithm(s.sum_exp_squared);
    Coefficients<T> c;
    c.square_scale = scale / s.sum_exp_squared;
    c.linear_scale = T(0);
    c.target_gradient = scale * exponential_minus_one(log_target_q);
    return c;
  }
};

}  // namespace lossext
