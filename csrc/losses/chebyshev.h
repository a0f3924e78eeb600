// The Chebyshev loss, L-infinity of the softmax (Janocha & Czarnecki 2017,
// Table 1):  l = max_j |p_j - y_j| = max(1 - p_t, max_{j != t} p_j).
// Since 1 - p_t = sum_{j != t} p_j >= max_{j != t} p_j, the target always
// attains the maximum and l = 1 - p_t: half the expectation loss, which is
// why the paper's Figure 4 finds the two curves "almost perfectly
// overlapped". The maximiser is taken to be the target; a tie with another
// class k happens only when every other p_j is 0, and then p_k = 1 - p_t
// has the same gradient, so either subgradient choice is this one.
// phi(u) = -expm1(u), phi'(u) = -p_t (target_probability_loss.h).
#pragma once

#include "target_probability_loss.h"

namespace lossext {

struct Chebyshev : TargetProbabilityLoss<Chebyshev>, NoParams {
  static constexpr const char* kName = "chebyshev";

  template <typename T>
  LOSSEXT_HOST_DEVICE static T loss_at(T log_p, const Params&) {
    return -exponential_minus_one(log_p);
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T slope_at(T log_p, const Params&) {
    return -exponential(log_p);
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T log_minus_slope_at(T log_p, const Params&) {
    return log_p;
  }
};

}  // namespace lossext
