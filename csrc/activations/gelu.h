// GELU (Hendrycks & Gimpel 2016), y = x Phi(x) with Phi the standard normal
// CDF, and its tanh approximation. Both derivatives need x.
//   exact:  Phi(x) = erfc(-x / sqrt 2) / 2,  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//           dy/dx = Phi(x) + x phi(x)
//   tanh:   u = sqrt(2/pi) (x + 0.044715 x^3),  y = x (1 + tanh u) / 2 = x sigma(2u)
//           dy/dx = sigma(2u) + 2 x sigma(2u) (1 - sigma(2u)) du/dx,
//           du/dx = sqrt(2/pi) (1 + 3 0.044715 x^2)
// Phi and phi come from normal_cdf_and_density (activation_math.h, and the
// vector version in csrc/cpu/vec/math.h, which shares one exp between them): from
// erfc rather than 1 + erf, so Phi keeps its relative accuracy for negative x,
// where it is small. The tanh form is evaluated through
// e = exp(-2|u|) in (0, 1]: sigma(2u) = 1 / (1 + e) for u >= 0, e / (1 + e)
// otherwise, and sigma(2u)(1 - sigma(2u)) = e / (1 + e)^2 on both sides, so
// neither 1 + tanh u nor 1 - tanh^2 u is formed by cancellation (PyTorch's
// 1 - tanh^2 loses all digits where tanh rounds to +-1, an absolute error up
// to ~1e-6 in float32 at |x| ~ 5). At x = +-inf, x * 0 is NaN, as in PyTorch.
#pragma once

#include "activation.h"

namespace lossext {

struct Gelu {
  template <typename T>
  struct Params {
    bool tanh_approximation;
  };

  static constexpr double kSqrtTwoOverPi = 0.79788456080286535588;   // sqrt(2 / pi)
  static constexpr double kCubicCoefficient = 0.044715;

  // sigma(2u) and sigma(2u)(1 - sigma(2u)) of the tanh form, from e = exp(-2|u|).
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static void tanh_form_terms(V x, V& logistic, V& logistic_slope) {
    const V inner = V(T(kSqrtTwoOverPi)) * (x + V(T(kCubicCoefficient)) * x * x * x);
    const V e = exponential(V(T(-2)) * absolute(inner));
    const V q = V(T(1)) / (V(T(1)) + e);
    logistic = where(inner >= V(T(0)), q, e * q);
    logistic_slope = e * q * q;
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>& p) {
    if (p.tanh_approximation) {
      V logistic, logistic_slope;
      tanh_form_terms<V, T>(x, logistic, logistic_slope);
      return x * logistic;
    }
    return x * normal_cdf(x);
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V x, const Params<T>& p) {
    if (p.tanh_approximation) {
      V logistic, logistic_slope;
      tanh_form_terms<V, T>(x, logistic, logistic_slope);
      const V inner_derivative = V(T(kSqrtTwoOverPi)) * (V(T(1)) + V(T(3 * kCubicCoefficient)) * x * x);
      return grad * (logistic + V(T(2)) * x * logistic_slope * inner_derivative);
    }
    V cdf, density;
    normal_cdf_and_density(x, cdf, density);
    return grad * (cdf + x * density);
  }
};

}  // namespace lossext
