// ReLU, Leaky ReLU and Hardtanh: piecewise linear, so the derivative is read
// off which piece an element is on, and the output says that as well as the
// input does (Daza: ReLU backward is g * 1[x > 0]).
#pragma once

#include "activation.h"

namespace lossext {

// y = max(x, 0); dy/dx = 1[x > 0] = 1[y > 0].
struct Relu {
  static constexpr bool kLightForward = true, kLightBackward = true;

  template <typename T>
  struct Params {};

  // x < 0 (not x <= 0) keeps -0.0 and NaN as they are, like torch.relu.
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>&) {
    return where(x < V(T(0)), V(T(0)), x);
  }
  // y <= 0 (not !(y > 0)) lets a NaN output pass the gradient, like
  // threshold_backward.
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V output, const Params<T>&) {
    return where(output <= V(T(0)), V(T(0)), grad);
  }
};

// y = x for x > 0, s x otherwise; dy/dx = 1 or s. For s >= 0, y > 0 exactly
// when x > 0, so the output can stand in for the input (the op layer checks
// s >= 0 when it is given the output).
struct LeakyRelu {
  static constexpr bool kLightForward = true, kLightBackward = true;

  template <typename T>
  struct Params {
    T negative_slope;
  };

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>& p) {
    return where(x > V(T(0)), x, x * V(p.negative_slope));
  }
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V saved, const Params<T>& p) {
    return where(saved > V(T(0)), grad, grad * V(p.negative_slope));
  }
};

// y = clamp(x, lo, hi); dy/dx = 1[lo < x < hi], as PyTorch: the bounds are
// compared in the accumulation type (float for half types, unrounded to the
// tensor's dtype) and the clamped value is rounded once when stored. The
// backward gets `saved`, the input, or the output where both bounds are values
// of the dtype (the op layer's choice, lossext/activations/ops.py): then the
// output is a bound exactly when x <= lo or x >= hi, and decides as the input
// would. With a bound between two values of the dtype it cannot:
// float16 hardtanh(1.0, -1, 1.0001) is 1.0, unclamped (dy/dx = 1), and so is
// hardtanh(1.5, -1, 1.0001), clamped (dy/dx = 0). NaN fails every comparison:
// it stays NaN forward, and its gradient is 0 (below).
struct Hardtanh {
  static constexpr bool kLightForward = true, kLightBackward = true;

  template <typename T>
  struct Params {
    T min_val;
    T max_val;
  };

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>& p) {
    const V lo(p.min_val), hi(p.max_val);
    return where(x < lo, lo, where(x > hi, hi, x));
  }
  // Zero at the bounds and at NaN (which fails both comparisons), as in
  // PyTorch's vectorised hardtanh_backward (its scalar remainder loop passes
  // the gradient through at NaN).
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V saved, const Params<T>& p) {
    return where((saved > V(p.min_val)) & (saved < V(p.max_val)), grad, V(T(0)));
  }
};

}  // namespace lossext
