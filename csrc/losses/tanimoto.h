// The Tanimoto loss (Janocha & Czarnecki 2017, Table 1), in [-1, 0] as the
// paper defines it:
//   l = -sum_j p_j y_j / (||p||^2 + ||y||^2 - sum_j p_j y_j) = -p_t / D,
//   D = P2 + 1 - p_t = (1 - p_t) + P2 >= 3/4,
// with P2 = sum_j p_j^2 and 1 - p_t = -expm1(log p_t), so D is a sum of
// non-negative terms. From dp_t/do_k = p_t ([k == t] - p_k) and
// dP2/do_k = 2 p_k (p_k - P2):
//   dl/do_k = (p_t / D^2) (2 p_k^2 + (1 - P2) p_k)                  (k != t)
//   dl/do_t = -p_t (1 + p_t) ((1 - p_t)^2 + R) / D^2,   R = P2 - p_t^2,
// the target's form simplified so that it has no cancelling terms (it is
// minus the sum of the others; (1 - p_t)^2 + R is the regularised
// expectation loss).
#pragma once

#include "quadratic_softmax_gradient.h"

namespace lossext {

struct Tanimoto : QuadraticSoftmaxGradient, NoParams {
  static constexpr unsigned kNeeds = kSoftmax | kSumExpSquared;
  static constexpr const char* kName = "tanimoto";

  template <typename T>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params&, const ReductionInfo<T>& reduction) {
    const T denominator = s.target_probability_complement() + s.sum_probability_squared();
    return s.target_weight * (-s.target_probability() / denominator) * reduction.weighted_scale();
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params&,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    const T scale = upstream * reduction.weighted_scale() * s.target_weight;
    const T p_t = s.target_probability();
    const T miss = s.target_probability_complement();
    const T p2 = s.sum_probability_squared();
    const T denominator = miss + p2;
    const T common = scale * p_t / (denominator * denominator);
    Coefficients<T> c;
    c.square_scale = common * T(2) / (s.sum_exp * s.sum_exp);
    c.linear_scale = common * (T(1) - p2) / s.sum_exp;
    c.target_gradient = -common * (T(1) + p_t) * (miss * miss + (p2 - p_t * p_t));
    return c;
  }
};

}  // namespace lossext
