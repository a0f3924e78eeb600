// The regularised expectation loss, squared L2 of the softmax (Janocha &
// Czarnecki 2017, Table 1 and Proposition 1):
//   l = ||y - p||_2^2 = (1 - p_t)^2 + R,   R = sum_{j != t} p_j^2 = P2 - p_t^2,
// (equal to 1 - 2 p_t + P2, written as a sum of squares so it does not cancel
// to rounding noise as p_t -> 1; 1 - p_t comes from -expm1(log p_t)).
// Gradient, from dp_j/do_k = p_j ([j == k] - p_k):
//   dl/do_k = 2 sum_j (p_j - y_j) p_j ([j == k] - p_k) = 2 p_k ((p_k - y_k) - (P2 - p_t)),
// so for k != t it is 2 p_k^2 + 2 (p_t - P2) p_k (quadratic_softmax_gradient.h)
// and at the target 2 p_t (2 p_t - 1 - P2) = -2 p_t l.
#pragma once

#include "quadratic_softmax_gradient.h"

namespace lossext {

struct RegularizedExpectation : QuadraticSoftmaxGradient, NoParams {
  static constexpr unsigned kNeeds = kSoftmax | kSumExpSquared;
  static constexpr const char* kName = "regularized_expectation";

  template <typename T>
  LOSSEXT_HOST_DEVICE static T row_loss(const RowStats<T>& s) {
    const T p_t = s.target_probability();
    const T miss = s.target_probability_complement();
    return miss * miss + (s.sum_probability_squared() - p_t * p_t);
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params&, const ReductionInfo<T>& reduction) {
    return s.target_weight * row_loss(s) * reduction.weighted_scale();
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params&,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T scale = upstream * reduction.weighted_scale() * s.target_weight;
    const T p_t = s.target_probability();
    Coefficients<T> c;
    c.square_scale = scale * T(2) / (s.sum_exp * s.sum_exp);
    c.linear_scale = scale * T(2) * (p_t - s.sum_probability_squared()) / s.sum_exp;
    c.target_gradient = scale * T(-2) * p_t * row_loss(s);
    return c;
  }
};

}  // namespace lossext
