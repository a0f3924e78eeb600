// ELU and SELU (SELU is ELU with alpha = 1.6733 and an output scale 1.0507,
// Klambauer et al. 2017):
//   y = scale x                     for x > 0
//   y = scale alpha (e^x - 1)       for x <= 0
//   dy/dx = scale                   for x > 0
//   dy/dx = scale alpha e^x         for x <= 0
// The backward takes the input, as PyTorch's does. From the output the
// negative slope would be y + scale alpha, which cancels where e^x is small:
// its absolute error is the output's rounding, half an ulp of scale alpha
// (bfloat16 SELU gave 2.9e-4 at x = -8, -12 and -20, exactly 5.9e-4, 1.1e-5
// and 3.6e-9; float32 ELU 6e-8 at x = -17, exactly 4.1e-8), while e^x keeps
// the relative accuracy of the exp.
#pragma once

#include "activation.h"

namespace lossext {

struct Elu {
  template <typename T>
  struct Params {
    T alpha;
    T scale;
  };

  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V forward(V x, const Params<T>& p) {
    return where(x > V(T(0)), V(p.scale) * x, V(p.scale * p.alpha) * exponential_minus_one(x));
  }
  // `x > 0` sends NaN to the negative branch, whose slope is then NaN: a NaN
  // input gets a NaN gradient, as in PyTorch's vectorised elu_backward (its
  // scalar remainder loop gives the positive branch's slope instead).
  template <typename V, typename T>
  LOSSEXT_HOST_DEVICE static V backward(V grad, V x, const Params<T>& p) {
    return where(x > V(T(0)), grad * V(p.scale), grad * (V(p.scale * p.alpha) * exponential(x)));
  }
};

// SELU's constants, from Klambauer et al. (2017), as in torch.nn.SELU.
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

}  // namespace lossext
