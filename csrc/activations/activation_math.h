// Scalar math for the activation headers, beside row_loss.h's where/maximum/
// absolute/exponential: the CUDA driver runs the activations on float and
// double, the CPU driver on double (its float path uses the 8-wide VecF
// overloads of the same names in csrc/cpu/vec.h, written out there because
// libm has no vector versions).
#pragma once

#include <cmath>

#include "../losses/row_loss.h"

namespace lossext {

LOSSEXT_HOST_DEVICE float exponential_minus_one(float a) { return ::expm1f(a); }
LOSSEXT_HOST_DEVICE double exponential_minus_one(double a) { return ::expm1(a); }
LOSSEXT_HOST_DEVICE float hyperbolic_tangent(float a) { return ::tanhf(a); }
LOSSEXT_HOST_DEVICE double hyperbolic_tangent(double a) { return ::tanh(a); }
LOSSEXT_HOST_DEVICE float complementary_error_function(float a) { return ::erfcf(a); }
LOSSEXT_HOST_DEVICE double complementary_error_function(double a) { return ::erfc(a); }

}  // namespace lossext
