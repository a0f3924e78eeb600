// The hinge (margin) loss and its powers, hinge^p for any real p >= 1
// (Janocha & Czarnecki 2017, Table 1: hinge, hinge^2 and hinge^3 with margin
// 1/2; Tang 2013). With y^_j = 2 y_j - 1 (+1 at the target, -1 elsewhere),
//   l = sum_j max(0, margin - y^_j o_j)^p,
// so f(o) = h(margin + o) for j != t and g(o) = h(margin - o) at the target,
// h(x) = max(0, x)^p. By the chain rule f'(o) = h'(margin + o) and
// g'(o) = -h'(margin - o), with h'(x) = p x^(p-1) for x > 0 and 0 for x <= 0:
// relu's convention at x = 0 for p = 1, the derivative's value there for p > 1.
// The paper's p = 1, 2 and 3 take paths without a power (multiplications
// only); other p use powers, x^p = exp(p log x), and where value and
// gradient are computed together one power serves both: x^p = x x^(p-1)
// and h'(x) = p x^(p-1).
#pragma once

#include <cmath>

#include "class_sum_loss.h"

namespace lossext {

struct Hinge : ClassSumLoss<Hinge> {
  static constexpr const char* kName = "hinge";
  static constexpr int kNumParams = 2;  // [p, margin]

  enum class Power { kOne, kTwo, kThree, kGeneral };
  struct Params {
    double p;
    double margin;
    Power power;
  };
  static Params make_params(const double* values) {
    const double p = values[0];
    const Power power = p == 1.0 ? Power::kOne : p == 2.0 ? Power::kTwo : p == 3.0 ? Power::kThree : Power::kGeneral;
    return Params{p, values[1], power};
  }
  static const char* param_error(const double* values) {
    if (!(values[0] >= 1.0) || std::isinf(values[0])) return "p must be a finite real number >= 1";
    if (!std::isfinite(values[1])) return "margin must be finite";
    return nullptr;
  }

  // h(x) = max(0, x)^p; NaN stays NaN.
  template <typename V>
  LOSSEXT_HOST_DEVICE static V open_power(V x, const Params& params) {
    const V open = maximum(x, V(0.0f));
    switch (params.power) {
      case Power::kOne: return open;
      case Power::kTwo: return open * open;
      case Power::kThree: return open * open * open;
      default: return nonnegative_power(open, V(params.p));
    }
  }

  // h'(x) = p x^(p-1) for x > 0, 0 for x <= 0 (a NaN x follows torch.relu(x).pow(p)'s gradient).
  template <typename V>
  LOSSEXT_HOST_DEVICE static V open_power_derivative(V x, const Params& params) {
    const V zero(0.0f);
    switch (params.power) {
      case Power::kOne: return where(x <= zero, zero, V(1.0f));
      case Power::kTwo: return where(x <= zero, zero, V(2.0f) * x);
      case Power::kThree: return where(x <= zero, zero, V(3.0f) * x * x);
      default: return where(x <= zero, zero, V(params.p) * nonnegative_power(x, V(params.p - 1.0)));
    }
  }

  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_value_and_derivative(V z, const Params& params, V& derivative) {
    if (params.power != Power::kGeneral) {
      derivative = element_derivative(z, params);
      return element_value(z, params);
    }
    const V x = V(params.margin) + z;
    const V open = maximum(x, V(0.0f));
    const V lower_power = nonnegative_power(open, V(params.p - 1.0));  // x^(p-1), 0 for x <= 0 (p > 1)
    derivative = where(x <= V(0.0f), V(0.0f), V(params.p) * lower_power);
    return open * lower_power;
  }

  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_value(V z, const Params& params) {
    return open_power(V(params.margin) + z, params);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V element_derivative(V z, const Params& params) {
    return open_power_derivative(V(params.margin) + z, params);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_value(V z, const Params& params) {
    return open_power(V(params.margin) - z, params);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V target_derivative(V z, const Params& params) {
    return -open_power_derivative(V(params.margin) - z, params);
  }
};

}  // namespace lossext
