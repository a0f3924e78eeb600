// The alpha-loss (Sypherd et al., "A tunable loss function for robust
// classification"; the seeds' Mendez-Vazquez slides), for alpha in (0, inf]:
//   l = alpha / (alpha - 1) (1 - p_t^((alpha - 1) / alpha)),
// cross-entropy -log p_t at alpha = 1 (the limit) and 1 - p_t at alpha = inf.
// With beta = (alpha - 1) / alpha and u = log p_t this is
//   phi(u) = (1 - e^(beta u)) / beta = -expm1(beta u) / beta   (beta != 0),
//   phi(u) = -u                                               (beta = 0),
//   phi'(u) = -e^(beta u) = -p_t^beta,
// continuous in beta: expm1 keeps phi exact as alpha -> 1, where
// 1 - p_t^beta would cancel. beta is computed as (alpha - 1) / alpha, exact
// near alpha = 1 where 1 - 1/alpha would cancel, and is 1 at alpha = inf.
// The gradient is p_t^beta times cross-entropy's (target_probability_loss.h):
// for alpha < 1 (beta < 0) p_t^beta grows without bound as p_t -> 0, so the
// non-target gradient p_t^beta p_k is taken in log space there,
// exp(beta u + log p_k): o = (0, 88, 0, 0), t = 0, alpha = 1/2 gives 1 at
// classes 2 and 3, where e^88 e^-88 in float would flush to 0.
#pragma once

#include <cmath>

#include "target_probability_loss.h"

namespace lossext {

struct AlphaLoss : TargetProbabilityLoss<AlphaLoss> {
  static constexpr const char* kName = "alpha_loss";
  static constexpr int kNumParams = 1;  // [alpha]

  struct Params {
    double beta;  // (alpha - 1) / alpha
  };
  static Params make_params(const double* values) {
    const double alpha = values[0];
    return Params{std::isinf(alpha) ? 1.0 : (alpha - 1.0) / alpha};
  }
  static const char* param_error(const double* values) {
    if (!(values[0] > 0.0)) return "alpha must be > 0 (or inf)";
    return nullptr;
  }

  template <typename T>
  LOSSEXT_HOST_DEVICE static T loss_at(T log_p, const Params& params) {
    const T beta = T(params.beta);
    return beta == T(0) ? -log_p : -exponential_minus_one(beta * log_p) / beta;
  }
  // At beta = 0 the slope is -1 outright: -exp(beta u) would be -exp(0 * -inf) = NaN when p_t = 0.
  template <typename T>
  LOSSEXT_HOST_DEVICE static T slope_at(T log_p, const Params& params) {
    const T beta = T(params.beta);
    return beta == T(0) ? T(-1) : -exponential(beta * log_p);
  }
  template <typename T>
  LOSSEXT_HOST_DEVICE static T log_minus_slope_at(T log_p, const Params& params) {
    const T beta = T(params.beta);
    return beta == T(0) ? T(0) : beta * log_p;
  }
};

}  // namespace lossext
