// Sigmoid, tanh, SiLU and Swish.
//   sigmoid: y = 1 / (1 + e^-x),          dy/dx = y (1 - y)
//   tanh:    y = tanh x,                  dy/dx = 1 - y^2
// both functions of the output, which is what they save;
//   swish:   y = x s,  s = sigmoid(beta x),
//            dy/dx    = s + beta x s (1 - s) = s (1 + beta x (1 - s))
//            dy/dbeta = x^2 s (1 - s)
// which needs x (x is not a function of y: swish is not monotonic), and SiLU
// is swish with beta = 1. At x = +-inf, x s and x (1 - s) are inf * 0 = NaN,
// as in PyTorch's silu.
#pragma once

#include "activation.h"

namespace lossext {

struct Sigmoid {
  static constexpr bool kLightBackward = true;  // from the output, no exp
  template <typename T>
  struct Params {};

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>&) {
    return V(T(1)) / (V(T(1)) + exponential(-x));
  }
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V output, const Params<T>&) {
    return grad * output * (V(T(1)) - output);
  }
};

struct Tanh {
  static constexpr bool kLightBackward = true;  // from the output, no exp
  template <typename T>
  struct Params {};

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>&) {
    return hyperbolic_tangent(x);
  }
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V output, const Params<T>&) {
    return grad * (V(T(1)) - output * output);
  }
};

struct Silu {
  template <typename T>
  struct Params {};

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>&) {
    return x * (V(T(1)) / (V(T(1)) + exponential(-x)));
  }
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V input, const Params<T>&) {
    const V s = V(T(1)) / (V(T(1)) + exponential(-input));
    return grad * s * (V(T(1)) + input * (V(T(1)) - s));
  }
};

// A channel activation (see activation.h): the parameter is beta. (Constants
// are written V(1.0f): exact in float and double alike.)
struct Swish {
  template <typename V>
  LOSSEXT_HOST_DEVICE static V forward(V x, V beta) {
    const V s = V(1.0f) / (V(1.0f) + exponential(-(beta * x)));
    return x * s;
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V x, V beta, V& beta_term) {
    const V s = V(1.0f) / (V(1.0f) + exponential(-(beta * x)));
    const V s_one_minus_s = s * (V(1.0f) - s);
    beta_term = grad * x * x * s_one_minus_s;
    return grad * (s + beta * x * s_one_minus_s);
  }
};

}  // namespace lossext
