// The L2 loss against the one-hot target (Janocha & Czarnecki 2017, Table 1):
//   l = ||y - o||_2^2 = sum_{j != t} o_j^2 + (1 - o_t)^2,
// with derivatives 2 o_j for j != t and -2 (1 - o_t) at the target.
#pragma once

#include "class_sum_loss.h"

namespace lossext {

struct L2 : ClassSumLoss<L2>, NoParams {
  static constexpr const char* kName = "l2";

  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_value(V z, const Params&) {
    return z * z;
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_derivative(V z, const Params&) {
    return V(2.0f) * z;
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_value(V z, const Params&) {
    const V residual = V(1.0f) - z;
    return residual * residual;
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_derivative(V z, const Params&) {
    return V(-2.0f) * (V(1.0f) - z);
  }
};

}  // namespace lossext
