// The L1 loss against the one-hot target (Janocha & Czarnecki 2017, Table 1):
//   l = ||y - o||_1 = sum_{j != t} |o_j| + |1 - o_t|.
// Derivatives: sign(o_j) for j != t and -sign(1 - o_t) at the target, with
// sign(0) = 0 (torch.abs's subgradient; torch.sign is also 0 at NaN).
#pragma once

#include "class_sum_loss.h"

namespace lossext {

struct L1 : ClassSumLoss<L1>, NoParams {
  static constexpr const char* kName = "l1";

  template <typename V>
  LOSSEXT_HOST_DEVICE static V sign(V x) {
    const V zero(0.0f);
    return where(x > zero, V(1.0f), where(x < zero, V(-1.0f), zero));
  }

  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_value(V z, const Params&) {
    return absolute(z);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_derivative(V z, const Params&) {
    return sign(z);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_value(V z, const Params&) {
    return absolute(V(1.0f) - z);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_derivative(V z, const Params&) {
    return -sign(V(1.0f) - z);
  }
};

}  // namespace lossext
