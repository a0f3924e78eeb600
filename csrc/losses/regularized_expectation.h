// The regularised expectation loss, squared L2 of the softmax (Janocha &
// Czarnecki 2017, Table 1 and Proposition 1):
//   l = ||y - p||_2^2 = (1 - p_t)^2 + R,   R = sum_{j != t} p_j^2,
// (equal to 1 - 2 p_t + P2, written as a sum of squares so it does not cancel
// to rounding noise as p_t -> 1). Both terms come from the sums over the other
// classes (kOtherClassSums), A = sum_{j != t} e_j and B = sum_{j != t} e_j^2:
// 1 - p_t = A / S and R = B / S^2, so l = ((A / S)^2 + B / S^2) keeps its
// relative accuracy where p_t is within rounding of 1 (o = (0, -15, -16),
// t = 0: l = 2.81e-13, where P2 - p_t^2 gives rounding noise of either sign).
// Gradient, from dp_j/do_k = p_j ([j == k] - p_k):
//   dl/do_k = 2 sum_j (p_j - y_j) p_j ([j == k] - p_k) = 2 p_k ((p_k - y_k) - (P2 - p_t)),
// so for k != t it is 2 p_k^2 + 2 (p_t - P2) p_k (quadratic_softmax_gradient.h),
// p_t - P2 = p_t (1 - p_t) - R, and at the target 2 p_t (2 p_t - 1 - P2) = -2 p_t l.
#pragma once

#include "quadratic_softmax_gradient.h"

namespace lossext {

struct RegularizedExpectation : QuadraticSoftmaxGradient, NoParams {
  static constexpr unsigned kNeeds = kSoftmax | kSumExpSquared | kOtherClassSums;
  static constexpr const char* kName = "regularized_expectation";

  // 1 - p_t and R from the sums over the other classes.
  template <typename T>
  LOSSEXT_HOST_DEVICE static T miss(const RowStats<T>& s) {
    return s.sum_exp_other / s.sum_exp;
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T others_squared(const RowStats<T>& s) {
    return s.sum_exp_squared_other / (s.sum_exp * s.sum_exp);
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T row_loss(const RowStats<T>& s) {
    const T m = miss(s);
    return m * m + others_squared(s);
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
    c.linear_scale = scale * T(2) * (p_t * miss(s) - others_squared(s)) / s.sum_exp;
    c.target_gradient = scale * T(-2) * p_t * row_loss(s);
    return c;
  }
};

}  // namespace lossext
