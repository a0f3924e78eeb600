// The expectation loss, L1 of the softmax (Janocha & Czarnecki 2017, Table 1):
//   l = ||y - p||_1 = (1 - p_t) + sum_{j != t} p_j = 2 (1 - p_t)
// since sum_{j != t} p_j = 1 - p_t (their Proposition 1: twice the expected
// misclassification probability). So phi(u) = -2 expm1(u) of u = log p_t and
// phi'(u) = -2 e^u = -2 p_t (target_probability_loss.h has the gradient).
#pragma once

#include "target_probability_loss.h"

namespace lossext {

struct Expectation : TargetProbabilityLoss<Expectation>, NoParams {
  static constexpr const char* kName = "expectation";

  template <typename T>
  LOSSEXT_HOST_DEVICE static T loss_at(T log_p, const Params&) {
    return T(-2) * exponential_minus_one(log_p);
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T slope_at(T log_p, const Params&) {
    return T(-2) * exponential(log_p);
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T log_minus_slope_at(T log_p, const Params&) {
    return T(0.69314718055994530942) + log_p;  // log 2 + u
  }
};

}  // namespace lossext
