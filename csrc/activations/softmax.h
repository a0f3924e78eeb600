// Softmax along one dimension: a row op, run by the drivers' row loops.
//   y_j = e^(x_j - m) / sum_k e^(x_k - m),   m = max_k x_k
//   dL/dx_j = y_j (g_j - <g, y>)           (Daza; the Jacobian is diag(y) - y y^T)
// so backward needs only the output. Subtracting m keeps every exponent <= 0;
// a row holding NaN or +inf (inf - inf) or only -inf (-inf - -inf) comes out
// NaN, as in PyTorch.
#pragma once

#include "activation.h"

namespace lossext {

struct Softmax {

  template <typename V>
  LOSSEXT_HOST_DEVICE static V shifted_exponential(V x, V row_max) {
    return exponential(x - row_max);
  }
  template <typename V>
  LOSSEXT_HOST_DEVICE static V input_gradient(V grad, V output, V grad_dot_output) {
    return output * (grad - grad_dot_output);
  }
};

}  // namespace lossext
