// The one-vs-all logistic cross-entropy (Mendez-Vazquez 2025, "Logistic-Cross
// Entropy"): every class is its own binary problem with label y^_j = +1 at the
// target and -1 elsewhere, and
//   l = sum_j log(1 + exp(-y^_j o_j)) = softplus(-o_t) + sum_{j != t} softplus(o_j),
// so f(o) = softplus(o) for j != t and g(o) = softplus(-o) at the target, with
// f'(o) = sigmoid(o) and g'(o) = -sigmoid(-o).
//
// Without overflow: with u = exp(-|o|) in (0, 1],
//   softplus(o) = max(o, 0) + log1p(u),   sigmoid(o) = 1 / (1 + u) for o >= 0, u / (1 + u) for o < 0,
// one exp serving value and derivative. log1p(u) = log(w) u / (w - 1) with
// w = 1 + u (Goldberg 1991, Theorem 4), and u itself where w rounds to 1: the
// plain log(1 + u) would lose all digits of softplus(o) ~ exp(o) for o << 0.
#pragma once

#include "class_sum_loss.h"

namespace lossext {

struct Logistic : ClassSumLoss<Logistic>, NoParams {
  static constexpr const char* kName = "logistic";

  // softplus(z), and sigmoid(z) into `derivative`; NaN stays NaN, softplus(+inf) = inf.
  template <typename V>
  LOSSEXT_HOST_DEVICE static V softplus_and_sigmoid(V z, V& derivative) {
    const V zero(0.0f), one(1.0f);
    const V u = exponential(-absolute(z));
    const V w = one + u;
    const V log1p_u = where(w <= one, u, logarithm(w) * (u / (w - one)));
    derivative = where(z >= zero, one, u) / w;
    return maximum(z, zero) + log1p_u;
  }

  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_value_and_derivative(V z, const Params&, V& derivative) {
    return softplus_and_sigmoid(z, derivative);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_value(V z, const Params&) {
    V derivative;
    return softplus_and_sigmoid(z, derivative);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_derivative(V z, const Params&) {
    V derivative;
    softplus_and_sigmoid(z, derivative);
    return derivative;
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_value(V z, const Params&) {
    V derivative;
    return softplus_and_sigmoid(-z, derivative);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_derivative(V z, const Params&) {
    V derivative;
    softplus_and_sigmoid(-z, derivative);
    return -derivative;
  }
};

}  // namespace lossext
