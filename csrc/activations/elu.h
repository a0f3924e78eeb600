// ELU and SELU (SELU is ELU with alpha = 1.6733 and an output scale 1.0507,
// Klambauer et al. 2017):
//   y = scale x                     for x > 0
//   y = scale alpha (e^x - 1)       for x <= 0
//   dy/dx = scale                   for x > 0
//   dy/dx = scale alpha e^x = y + scale alpha   for x <= 0
// so with alpha >= 0 (y <= 0 exactly when x <= 0) the output is enough for the
// backward pass and the input can be freed. The op layer saves the output then
// and the input for alpha < 0, and tells backward which one it gets.
//
// From the output, y + scale alpha cancels where e^x is small: its absolute
// error is that of y, half an ulp of scale alpha in y's dtype (6e-8 in float32,
// 4e-3 alpha in bfloat16), as in PyTorch's own output-based elu_backward
// (used by the in-place F.elu_).
#pragma once

#include "activation.h"

namespace lossext {

struct Elu {
  template <typename T>
  struct Params {
    T alpha;
    T scale;
    bool saved_is_output;
  };

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>& p) {
    return where(x > V(T(0)), V(p.scale) * x, V(p.scale * p.alpha) * exponential_minus_one(x));
  }
  // `saved > 0` sends NaN to the negative branch, whose slope is then NaN: a
  // NaN input gets a NaN gradient, as in PyTorch's vectorised elu_backward
  // (its scalar remainder loop gives the positive branch's slope instead).
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V saved, const Params<T>& p) {
    const V negative_slope = p.saved_is_output ? saved + V(p.scale * p.alpha)
                                               : V(p.scale * p.alpha) * exponential(saved);
    return where(saved > V(T(0)), grad * V(p.scale), grad * negative_slope);
  }
};

// SELU's constants, from Klambauer et al. (2017), as in torch.nn.SELU.
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

}  // namespace lossext
