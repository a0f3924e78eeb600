// Losses on the raw logits that add one term per class, one form for the
// classes j != t and another for the target (Janocha & Czarnecki 2017,
// Table 1: L1, L2 and the hinge family):
//   l = sum_{j != t} f(o_j) + g(o_t),   dl/do_j = f'(o_j),   dl/do_t = g'(o_t).
// A loss derives from ClassSumLoss<Loss> and supplies, as templates over the
// value type V (the CPU driver's SIMD vector, or a scalar),
//   element_value(z, params) = f(z)    element_derivative(z, params) = f'(z)
//   target_value(z, params)  = g(z)    target_derivative(z, params)  = g'(z).
// The driver sums f over j != t (kElementSum, row_loss.h); this base adds
// g(o_t), weights the row by w_t and scales the derivatives. The derivatives
// need no row statistic (kElementwiseGradient): a loss whose f and f' share
// work also supplies element_value_and_derivative(z, params, derivative&).
#pragma once

#include "row_loss.h"

namespace lossext {

template <typename Loss>
struct ClassSumLoss {
  static constexpr unsigned kNeeds = kElementSum | kElementwiseGradient;

  template <typename T>
  struct Coefficients {
    T scale;  // w_t times the reduction's scale times the upstream gradient
    typename Loss::Params params;
  };

  template <typename T, typename Params>
  LOSSEXT_HOST_DEVICE static T value(const RowStats<T>& s, const Params& params, const ReductionInfo<T>& reduction) {
    const T row = s.element_sum + Loss::target_value(s.target_logit, params);
    return s.target_weight * row * reduction.weighted_scale();
  }

  template <typename T, typename Params>
  LOSSEXT_HOST_DEVICE static Coefficients<T> coefficients(const RowStats<T>& s, const Params& params,
                                                          const ReductionInfo<T>& reduction, T upstream) {
    return Coefficients<T>{upstream * reduction.weighted_scale() * s.target_weight, params};
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_gradient(V z, V, const Coefficients<T>& c) {
    return V(c.scale) * Loss::element_derivative(z, c.params);
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T target_gradient(T z, T, const Coefficients<T>& c) {
    return c.scale * Loss::target_derivative(z, c.params);
  }

  // f(z) and f'(z) computed separately; a loss hides this when they share work.
  template <typename V, typename Params>
  LOSSEXT_HOST_DEVICE static V element_value_and_derivative(V z, const Params& params, V& derivative) {
    derivative = Loss::element_derivative(z, params);
    return Loss::element_value(z, params);
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_value_and_gradient(V z, V, const Coefficients<T>& c, V& gradient) {
    V derivative;
    const V value = Loss::element_value_and_derivative(z, c.params, derivative);
    gradient = V(c.scale) * derivative;
    return value;
  }
};

}  // namespace lossext
