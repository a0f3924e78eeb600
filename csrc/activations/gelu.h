// GELU (Hendrycks & Gimpel 2016), y = x Phi(x) with Phi the standard normal
// CDF, and its tanh approximation. Both derivatives need x.
//   exact:  Phi(x) = erfc(-x / sqrt 2) / 2,  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
//           dy/dx = Phi(x) + x phi(x)
//   tanh:   u = sqrt(2/pi) (x + 0.044715 x^3),  y = x (1 + tanh u) / 2
//           dy/dx = (1 + tanh u) / 2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2)
// Phi comes from erfc rather than 1 + erf so it keeps its relative accuracy for
// negative x, where it is small. The tanh form is PyTorch's, term for term, so
// it rounds (and overflows, x^3 at |x| > 7e12 in float32) the same way.
#pragma once

#include "activation.h"

namespace lossext {

struct Gelu {
  template <typename T>
  struct Params {
    bool tanh_approximation;
  };

  static constexpr double kSqrtHalf = 0.70710678118654752440;        // 1 / sqrt 2
  static constexpr double kInvSqrtTwoPi = 0.39894228040143267794;    // 1 / sqrt(2 pi)
  static constexpr double kSqrtTwoOverPi = 0.79788456080286535588;   // sqrt(2 / pi)
  static constexpr double kCubicCoefficient = 0.044715;

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V normal_cdf(V x) {
    return V(T(0.5)) * complementary_error_function(x * V(T(-kSqrtHalf)));
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>& p) {
    if (p.tanh_approximation) {
      const V inner = V(T(kSqrtTwoOverPi)) * (x + V(T(kCubicCoefficient)) * x * x * x);
      return V(T(0.5)) * x * (V(T(1)) + hyperbolic_tangent(inner));
    }
    return x * normal_cdf<V, T>(x);
  }

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V x, const Params<T>& p) {
    if (p.tanh_approximation) {
      const V x2 = x * x;
      const V inner = V(T(kSqrtTwoOverPi)) * (x + V(T(kCubicCoefficient)) * x2 * x);
      const V tanh_inner = hyperbolic_tangent(inner);
      const V inner_derivative = V(T(kSqrtTwoOverPi)) * (V(T(1)) + V(T(3 * kCubicCoefficient)) * x2);
      const V left_derivative = V(T(0.5)) * (V(T(1)) + tanh_inner);
      const V right_derivative = V(T(0.5)) * x * (V(T(1)) - tanh_inner * tanh_inner) * inner_derivative;
      return grad * (left_derivative + right_derivative);
    }
    const V density = V(T(kInvSqrtTwoPi)) * exponential(V(T(-0.5)) * x * x);
    return grad * (normal_cdf<V, T>(x) + x * density);
  }
};

}  // namespace lossext
