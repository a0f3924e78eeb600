// Scalar math for the activation headers, beside the shared scalar math of
// csrc/common/scalar_math.h (where, maximum, absolute, exponential,
// exponential_minus_one): the CUDA driver runs the activations on float and
// double, the CPU driver on double. Its float path uses the VecF overloads of
// the same names in csrc/cpu/vec/math.h (exponential_minus_one,
// hyperbolic_tangent, normal_cdf_and_density, normal_cdf), written out there
// because libm has no vector versions.
#pragma once

#include <cmath>

#include "common/macros.h"
#include "common/scalar_math.h"

namespace lossext {

LOSSEXT_HOST_DEVICE float hyperbolic_tangent(float a) { return ::tanhf(a); }
LOSSEXT_HOST_DEVICE float complementary_error(float a) { return ::erfcf(a); }
LOSSEXT_HOST_DEVICE double complementary_error(double a) { return ::erfc(a); }
LOSSEXT_HOST_DEVICE double hyperbolic_tangent(double a) { return ::tanh(a); }

// The standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2 and density
// phi(x) = exp(-x^2 / 2) / sqrt(2 pi). erfc, not 1 + erf, so Phi keeps its
// relative accuracy in the left tail.
template <typename T>
LOSSEXT_HOST_DEVICE void normal_cdf_and_density(T x, T& cdf, T& density) {
  cdf = T(0.5) * complementary_error(x * T(-0.70710678118654752440));
  density = T(0.39894228040143267794) * exponential(T(-0.5) * x * x);
}

template <typename T>
LOSSEXT_HOST_DEVICE T normal_cdf(T x) {
  return T(0.5) * complementary_error(x * T(-0.70710678118654752440));
}

}  // namespace lossext
