// Scalar math for the per-element headers (csrc/losses/, csrc/activations/),
// on float and double, host and device. The CPU driver adds overloads of the
// same names for its SIMD vector type (csrc/cpu/vec/), so element_value,
// element_gradient and the activations' forward and backward compile for both.
// The activations' own functions (erfc, the normal CDF) are in
// csrc/activations/activation_math.h.
#pragma once

#include <cmath>
#include <limits>

#include "common/macros.h"

namespace lossext {

LOSSEXT_HOST_DEVICE float where(bool condition, float a, float b) { return condition ? a : b; }
LOSSEXT_HOST_DEVICE double where(bool condition, double a, double b) { return condition ? a : b; }
// NaN-propagating, like torch.maximum.
LOSSEXT_HOST_DEVICE float maximum(float a, float b) { return (a != a || a > b) ? a : b; }
LOSSEXT_HOST_DEVICE double maximum(double a, double b) { return (a != a || a > b) ? a : b; }
LOSSEXT_HOST_DEVICE float absolute(float a) { return ::fabsf(a); }
LOSSEXT_HOST_DEVICE double absolute(double a) { return ::fabs(a); }
LOSSEXT_HOST_DEVICE float power(float a, float b) { return ::powf(a, b); }
LOSSEXT_HOST_DEVICE float exponential(float a) { return ::expf(a); }
LOSSEXT_HOST_DEVICE double exponential(double a) { return ::exp(a); }
LOSSEXT_HOST_DEVICE float logarithm(float a) { return ::logf(a); }
LOSSEXT_HOST_DEVICE double logarithm(double a) { return ::log(a); }
LOSSEXT_HOST_DEVICE double power(double a, double b) { return ::pow(a, b); }
// a^b for a >= 0 (or NaN) only: the CPU driver's vector overload computes
// exp(b log a), which is NaN for a < 0 where powf has integer-b answers.
LOSSEXT_HOST_DEVICE float nonnegative_power(float a, float b) { return ::powf(a, b); }
LOSSEXT_HOST_DEVICE double nonnegative_power(double a, double b) { return ::pow(a, b); }
// exp(a) - 1 without the cancellation of exp(a) - 1 near a = 0: 1 - p_t as
// -expm1(log p_t) keeps its relative accuracy when p_t -> 1.
LOSSEXT_HOST_DEVICE float exponential_minus_one(float a) { return ::expm1f(a); }
LOSSEXT_HOST_DEVICE double exponential_minus_one(double a) { return ::expm1(a); }
// tanh: the activations' and cross-entropy's logit cap (row_loss.h, kLogitSoftcap).
LOSSEXT_HOST_DEVICE float hyperbolic_tangent(float a) { return ::tanhf(a); }
LOSSEXT_HOST_DEVICE double hyperbolic_tangent(double a) { return ::tanh(a); }

template <typename T>
LOSSEXT_HOST_DEVICE T infinity() {
  return std::numeric_limits<T>::infinity();
}

}  // namespace lossext
