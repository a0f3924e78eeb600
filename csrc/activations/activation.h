// The contract between an activation and the drivers that run it.
//
// Every activation is a struct in a header under csrc/activations/ holding
// only its per-element math; both drivers (csrc/cpu/activation_driver.h and
// csrc/cuda/activation_driver.cuh) include it and own memory traffic,
// threading, dtypes and reductions, as the row losses do (csrc/losses/row_loss.h).
//
// An elementwise activation has
//   template <class T> struct Params               its scalars in the accumulation type T
//   template <class V, class T> V forward(V x, const Params<T>&)            -> y
//   template <class V, class T> V backward(V g, V saved, const Params<T>&)  -> dL/dx
// where g = dL/dy and `saved` is the one tensor the op saves for backward:
// the output y where the derivative is a function of y alone, else the input
// x (each header says which, and why). V is the value type: the CPU driver runs the math on
// 16- or 8-wide float vectors (csrc/cpu/vec/) and on double, the CUDA driver on
// float and double; T is float for float/half/bfloat16 (fp32 math for half
// types) and double for double.
//
// and optionally
//   static constexpr bool kLightForward, kLightBackward
// true where that direction is a few arithmetic operations per element (no
// exp), so its loop runs at memory speed: the CPU driver then writes outputs
// larger than the cache with streaming stores (csrc/cpu/activation_driver.h).
// Loops bound by their arithmetic keep ordinary stores: measured here, exact
// GELU's forward took 59 ms with streaming stores and 35 ms without, ReLU's
// 16.5 and 21 ms (2^26 float32 elements, 2 threads).
//
// A channel activation (PReLU, Swish) has one learnable parameter per channel
// of dim 1 (or one for the whole tensor) and
//   template <class V> V forward(V x, V parameter)
//   template <class V> V backward(V g, V x, V parameter, V& parameter_term)
// which returns dL/dx and sets parameter_term = g dy/dparameter, which the
// driver sums over the channel's elements in a fixed order.
//
// The math is written with where(mask, a, b) rather than branches, so lanes
// can disagree, and with the comparisons chosen so NaN takes the same branch
// as in PyTorch's kernels.
#pragma once

#include "activation_math.h"
