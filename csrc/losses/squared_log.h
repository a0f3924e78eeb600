// The squared log loss (Janocha & Czarnecki 2017, Table 1):
//   l = sum_j [y_j log p_j]^2 = (log p_t)^2.
// Table 1 prints a leading minus, which would make the loss -(log p_t)^2 and
// reward wrong answers; it is a typo. phi(u) = u^2, phi'(u) = 2u
// (target_probability_loss.h), with u = log p_t from log-sum-exp.
#pragma once

#include "target_probability_loss.h"

namespace lossext {

struct SquaredLog : TargetProbabilityLoss<SquaredLog>, NoParams {
  static constexpr const char* kName = "squared_log";

  template <typename T>
  LOSSEXT_HOST_DEVICE static T loss_at(T log_p, const Params&) {
    return log_p * log_p;
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T slope_at(T log_p, const Params&) {
    return T(2) * log_p;
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T log_minus_slope_at(T log_p, const Params&) {
    return logarithm(T(-2) * log_p);
  }
};

}  // namespace lossext
