// Scalar math for the activation headers, beside the shared scalar math of
// csrc/common/scalar_math.h (where, maximum, absolute, exponential,
// exponential_minus_one, hyperbolic_tangent): the CUDA driver runs the activations on float and
// double, the CPU driver on double. Its float path uses the VecF overloads of
// the same names in csrc/cpu/vec/math.h (exponential_minus_one,
// hyperbolic_tangent, normal_cdf_and_density, normal_cdf), written out there
// because libm has no vector versions.
#pragma once

#include <cmath>

#include "common/macros.h"
#include "common/scalar_math.h"

namespace lossext {

LOSSEXT_HOST_DEVICE float complementary_error(float a) { return ::erfcf(a); }
LOSSEXT_HOST_DEVICE double complementary_error(double a) { return ::erfc(a); }

LOSSEXT_HOST_DEVICE float fused_multiply_add(float a, float b, float c) { return ::fmaf(a, b, c); }
LOSSEXT_HOST_DEVICE double fused_multiply_add(double a, double b, double c) { return ::fma(a, b, c); }

// 1 / sqrt 2 = hi + lo, hi its rounding to the type.
LOSSEXT_HOST_DEVICE void inverse_sqrt_two_parts(float& hi, float& lo) {
  hi = 0.707106769084930419921875f;
  lo = 1.2101617104478969e-8f;
}
LOSSEXT_HOST_DEVICE void inverse_sqrt_two_parts(double& hi, double& lo) {
  hi = 0.70710678118654757273731092936941;
  lo = -4.8336466567264565e-17;
}

// The standard normal CDF Phi(x) = erfc(w) / 2 with w = -x / sqrt 2, and the
// density phi(x) = exp(-x^2 / 2) / sqrt(2 pi), each to a few ulp. erfc, not
// 1 + erf, so Phi keeps its relative accuracy in the left tail. There the two
// roundings of the arguments are amplified about x^2 times (the log-derivatives
// of exp(-x^2 / 2) and of erfc(w) are -x and about -2w): float64 GELU's
// gradient was 20-40 ulp off at |x| ~ 5-8 from them. So both are corrected by
// their exact errors, from fused multiply-adds:
//   x^2 = p + e,  e = fma(x, x, -p):  exp(-x^2 / 2) = exp(-p / 2) (1 - e / 2)
//   w = w_h + d,  d = fma(-x, hi, -w_h) - x lo:
//       erfc(w) = erfc(w_h) - d (2 / sqrt pi) exp(-w^2) = erfc(w_h) - 2 sqrt(2) d phi(x)
// (first order; the next terms are below an ulp). Where x^2 or w is infinite
// the errors are inf - inf: they are taken as 0 there.
template <typename T>
LOSSEXT_HOST_DEVICE T finite_or_zero(T value) {
  return value - value == T(0) ? value : T(0);
}

template <typename T>
LOSSEXT_HOST_DEVICE void normal_cdf_and_density(T x, T& cdf, T& density) {
  const T square = x * x;
  const T square_error = finite_or_zero(fused_multiply_add(x, x, -square));
  density = T(0.39894228040143267794) * exponential(T(-0.5) * square) * (T(1) - T(0.5) * square_error);
  T hi, lo;
  inverse_sqrt_two_parts(hi, lo);
  const T w = -x * hi;
  const T w_error = finite_or_zero(fused_multiply_add(-x, hi, -w) - x * lo);
  cdf = T(0.5) * complementary_error(w) - T(1.41421356237309504880) * w_error * density;
}

template <typename T>
LOSSEXT_HOST_DEVICE T normal_cdf(T x) {
  T cdf, density;
  normal_cdf_and_density(x, cdf, density);
  return cdf;
}

}  // namespace lossext
