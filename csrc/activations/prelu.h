// PReLU (He et al. 2015): a leaky ReLU whose slope w is learned, one per
// channel (dim 1) or one for the whole tensor. A channel activation (see
// activation.h):
//   y = x for x > 0, w x otherwise
//   dy/dx = 1 or w,   dy/dw = 0 or x
// dy/dw needs x on the negative side (x = y / w fails for w = 0), so PReLU
// saves its input. PyTorch materialises g * dy/dw as a tensor of the input's
// size and then sums it per channel; the drivers sum it as they go.
#pragma once

#include "activation.h"

namespace lossext {

struct Prelu {
  template <typename V>
  LOSSEXT_HOST_DEVICE static V forward(V x, V weight) {
    return where(x > V(0.0f), x, weight * x);
  }
  // A NaN input takes the negative branch (w g, and NaN into the weight's
  // sum), as in PyTorch's _prelu_kernel_backward.
  template <typename V>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V x, V weight, V& weight_term) {
    const V positive = V(0.0f);
    weight_term = where(x > positive, V(0.0f), x * grad);
    return where(x > positive, grad, weight * grad);
  }
};

}  // namespace lossext
