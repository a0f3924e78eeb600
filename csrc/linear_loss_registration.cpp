// The fused linear + loss ops' schemas (the classifier head without its
// logits), one pair per row loss in LOSSEXT_FOR_EACH_ROW_LOSS, as a fragment
// of the lossext library. Kernels: cpu/linear_losses.cpp and
// cuda/linear_losses.cu (both through linear_loss_op.h); fake kernels and
// autograd formulas: lossext/_linear.py.
//
//   <name>_linear_forward(input, linear_weight, linear_bias, target, weight, params, tensor_params,
//                         ignore_index, reduction, chunk_rows, chunk_bytes, grad_mask)
//       -> (loss, grad_input, grad_weight, grad_bias, tensor_params_grad)
//     The row loss <name> of the logits input @ linear_weight.T + linear_bias,
//     input (N, H), linear_weight (V, H), linear_bias (V,) or None, without
//     the (N, V) logits: the rows run in chunks through one reused buffer.
//     grad_mask says which gradients to compute in the same pass (input,
//     linear_weight, linear_bias, tensor_params), for an upstream gradient of
//     one; each of the others is an empty tensor. tensor_params_grad is (P,),
//     summed over rows in order. target, weight, params, tensor_params,
//     ignore_index and reduction are those of <name>_forward (registration.cpp).
//     chunk_rows: rows per chunk; else chunk_bytes: the logits buffer's size
//     (default 128 MiB, linear_loss_op.h).
//   <name>_linear_backward(grad_output, <the forward's arguments>)
//       -> (grad_input, grad_weight, grad_bias, tensor_params_grad)
//     The gradients recomputed from the inputs, scaled by grad_output (one
//     value, or (N,) for reduction none).
#include <torch/library.h>

#include "losses/all_losses.h"

namespace lossext {
namespace {

#define LOSSEXT_LINEAR_LOSS_ARGUMENTS                                                                   \
  "Tensor input, Tensor linear_weight, Tensor? linear_bias, Tensor target, Tensor? weight, float[] params, " \
  "Tensor? tensor_params, int ignore_index, int reduction, int? chunk_rows, int? chunk_bytes, bool[4] grad_mask"

#define LOSSEXT_DEFINE_LINEAR_LOSS_SCHEMAS(name, Loss)                                               \
  m.def(#name "_linear_forward(" LOSSEXT_LINEAR_LOSS_ARGUMENTS ") -> (Tensor, Tensor, Tensor, Tensor, Tensor)"); \
  m.def(#name "_linear_backward(Tensor grad_output, " LOSSEXT_LINEAR_LOSS_ARGUMENTS                  \
              ") -> (Tensor, Tensor, Tensor, Tensor)");

TORCH_LIBRARY_FRAGMENT(lossext, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_DEFINE_LINEAR_LOSS_SCHEMAS) }

#undef LOSSEXT_DEFINE_LINEAR_LOSS_SCHEMAS
#undef LOSSEXT_LINEAR_LOSS_ARGUMENTS

}  // namespace
}  // namespace lossext
