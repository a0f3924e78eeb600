// The gradient shape of the softmax losses built from p_t and the row's
// P2 = sum_j p_j^2 = S2 / S^2 (regularised expectation, Tanimoto and
// Cauchy-Schwarz, Janocha & Czarnecki 2017, Table 1): for k != t
//   dl/do_k = a p_k^2 + b p_k = (a / S^2) e_k^2 + (b / S) e_k,
// and one value at the target. Each loss derives from this, gives kNeeds and
// value(), and builds the Coefficients per row in coefficients().
#pragma once

#include "row_loss.h"

namespace lossext {

struct QuadraticSoftmaxGradient {
  template <typename T>
  struct Coefficients {
    T square_scale;     // a / S^2, scaled
    T linear_scale;     // b / S, scaled
    T target_gradient;  // dl/do_t, scaled
  };

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V element_gradient(V z, V, const Coefficients<T>& c) {
    return (V(c.square_scale) * z + V(c.linear_scale)) * z;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T target_gradient(T, T, const Coefficients<T>& c) {
    return c.target_gradient;
  }
};

}  // namespace lossext
