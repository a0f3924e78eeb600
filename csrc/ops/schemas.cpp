// Every lossext op's schema, in one place, generated from the lists of row
// losses (losses/all_losses.h) and activations (activations/all_activations.h).
// Kernels are registered per backend (cpu/, cuda/); fake kernels and autograd
// formulas in lossext/ (_ops.py for the row losses, activations.py).
//
// Each row loss has three ops:
//   <name>_forward(input, target, weight, params, tensor_params, ignore_index, reduction, compute_grad)
//       -> (loss, grad_input, row_param_grads)
//     The loss reduced as `reduction` says (0 none, 1 mean, 2 sum). With
//     compute_grad, grad_input is d(loss)/d(input) for an upstream gradient of
//     one (per row, for reduction none), from the same pass over the logits,
//     and row_param_grads (N, P) holds each row's derivatives with respect to
//     the P tensor_params (sum the rows for the gradient); otherwise both are empty.
//   <name>_forward_out(input, target, weight, params, tensor_params, ignore_index, reduction, grad_input!)
//       -> loss
//     The forward with the gradient written into grad_input, a contiguous
//     (N, C) buffer of the input's dtype (on CPU it may be the input itself).
//   <name>_backward(grad_output, input, target, weight, params, tensor_params, ignore_index, reduction)
//       -> (grad_input, row_param_grads)
//     Recomputes the gradients from the logits, scaled by grad_output.
// `params` are the loss's fixed scalars, in the order its header's make_params
// reads them; `tensor_params` its learnable ones (None for most losses).
//
// Each activation <name> has two, with the argument lists of its line in
// LOSSEXT_FOR_EACH_ACTIVATION:
//   <name>_forward(input, <params>) -> output
//   <name>_backward(grad_output, <saved>, <params>) -> grad_input
#include <torch/library.h>

#include "activations/all_activations.h"
#include "losses/all_losses.h"

namespace lossext {
namespace {

#define LOSSEXT_DEFINE_ROW_LOSS_SCHEMAS(name, Loss)                                                      \
  m.def(#name "_forward(Tensor input, Tensor target, Tensor? weight, float[] params, "                     \
              "Tensor? tensor_params, int ignore_index, int reduction, bool compute_grad) "                \
              "-> (Tensor, Tensor, Tensor)");                                                              \
  m.def(#name "_forward_out(Tensor input, Tensor target, Tensor? weight, float[] params, "                 \
              "Tensor? tensor_params, int ignore_index, int reduction, Tensor(a!) grad_input) -> Tensor"); \
  m.def(#name "_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, float[] params, " \
              "Tensor? tensor_params, int ignore_index, int reduction) -> (Tensor, Tensor)");

#define LOSSEXT_DEFINE_ACTIVATION_SCHEMAS(name, forward_arguments, backward_arguments) \
  m.def(#name "_forward" forward_arguments);                                          \
  m.def(#name "_backward" backward_arguments);

TORCH_LIBRARY(lossext, m) {
  LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_DEFINE_ROW_LOSS_SCHEMAS)
  LOSSEXT_FOR_EACH_ACTIVATION(LOSSEXT_DEFINE_ACTIVATION_SCHEMAS)
}

#undef LOSSEXT_DEFINE_ACTIVATION_SCHEMAS
#undef LOSSEXT_DEFINE_ROW_LOSS_SCHEMAS

}  // namespace
}  // namespace lossext
