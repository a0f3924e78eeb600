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
// Each row loss also has block ops (ops/row_statistics_op.h; kernels in
// cpu/row_statistics.cpp, fake kernels in lossext/losses/row_statistics.py).
// A row's classes split into blocks of columns [class_offset, class_offset + width):
//   <name>_block_statistics(input, target, weight, params, tensor_params, class_offset, num_classes,
//                           ignore_index) -> (statistics, max_other_index)
//     input (N, width) is the block of the logits, weight (width,) its class
//     weights, a dense target (N, width) its probabilities; class-index
//     targets are the rows' global classes. statistics (N, F) in the
//     accumulation dtype, packed as losses/row_statistics.h describes;
//     max_other_index (N,) int64 for losses that need the largest other
//     logit's class (kMaxOtherIndex), else (0,). Ignored rows get empty statistics.
//   <name>_combine_statistics(statistics[], max_other_index[], tensor_params) -> (statistics, max_other_index)
//     The statistics of the union of the blocks, in any order.
//   <name>_rebase_statistics(statistics, max_statistics, tensor_params) -> statistics
//     A block's statistics with its SUM part moved to the combined MAX part
//     max_statistics (N, M): the SUM parts of all blocks so rebased add up to
//     the combination's (one MAX and one SUM reduction between processes).
//   <name>_block_loss_and_gradient(input, target, weight, params, tensor_params, statistics, max_other_index,
//                                  class_offset, num_classes, ignore_index, reduction, target_weight_sum,
//                                  grad_output, compute_grad) -> (loss, grad_input, row_param_grads)
//     From the combined statistics: the loss (every block's call returns the
//     same), and with compute_grad the gradient of the block (N, width),
//     scaled by grad_output (None: 1), and row_param_grads (N, P), each row's
//     derivatives with respect to the tensor params (the same from every
//     block). target_weight_sum, the mean's denominator, is computed from the
//     statistics when None.
//   <name>_statistics_layout() -> (int, str[], bool)
//     The number M of MAX-combined fields (first in the packed row), every
//     field's name, and whether the loss has a max_other_index tensor.
// Each row loss also has a fused linear head (the classifier head without its
// logits; kernels in cpu/linear_losses.cpp and cuda/linear_losses.cu through
// ops/linear_loss_op.h; fake kernels and autograd in lossext/heads/linear.py):
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
//     ignore_index and reduction are those of <name>_forward (above).
//     chunk_rows: rows per chunk; else chunk_bytes: the logits buffer's size
//     (default 128 MiB, linear_loss_op.h).
//   <name>_linear_backward(grad_output, <the forward's arguments>)
//       -> (grad_input, grad_weight, grad_bias, tensor_params_grad)
//     The gradients recomputed from the inputs, scaled by grad_output (one
//     value, or (N,) for reduction none).
#include <torch/library.h>

#include "activations/all_activations.h"
#include "losses/all_losses.h"
#include "ops/row_statistics_op.h"

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

#define LOSSEXT_DEFINE_ROW_STATISTICS_SCHEMAS(name, Loss)                                                       \
  m.def(#name "_block_statistics(Tensor input, Tensor target, Tensor? weight, float[] params, "                  \
              "Tensor? tensor_params, int class_offset, int num_classes, int ignore_index) -> (Tensor, Tensor)");  \
  m.def(#name "_combine_statistics(Tensor[] statistics, Tensor[] max_other_index, Tensor? tensor_params) "       \
              "-> (Tensor, Tensor)");                                                                             \
  m.def(#name "_rebase_statistics(Tensor statistics, Tensor max_statistics, Tensor? tensor_params) -> Tensor");  \
  m.def(#name "_block_loss_and_gradient(Tensor input, Tensor target, Tensor? weight, float[] params, "           \
              "Tensor? tensor_params, Tensor statistics, Tensor max_other_index, int class_offset, "              \
              "int num_classes, int ignore_index, int reduction, Tensor? target_weight_sum, "                    \
              "Tensor? grad_output, bool compute_grad) -> (Tensor, Tensor, Tensor)");                            \
  m.def(#name "_statistics_layout() -> (int, str[], bool)", &row_statistics_layout<Loss>);

#define LOSSEXT_LINEAR_LOSS_ARGUMENTS                                                                   \
  "Tensor input, Tensor linear_weight, Tensor? linear_bias, Tensor target, Tensor? weight, float[] params, " \
  "Tensor? tensor_params, int ignore_index, int reduction, int? chunk_rows, int? chunk_bytes, bool[4] grad_mask"

#define LOSSEXT_DEFINE_LINEAR_LOSS_SCHEMAS(name, Loss)                                               \
  m.def(#name "_linear_forward(" LOSSEXT_LINEAR_LOSS_ARGUMENTS ") -> (Tensor, Tensor, Tensor, Tensor, Tensor)"); \
  m.def(#name "_linear_backward(Tensor grad_output, " LOSSEXT_LINEAR_LOSS_ARGUMENTS                  \
              ") -> (Tensor, Tensor, Tensor, Tensor)");

TORCH_LIBRARY(lossext, m) {
  LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_DEFINE_ROW_LOSS_SCHEMAS)
  LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_DEFINE_ROW_STATISTICS_SCHEMAS)
  LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_DEFINE_LINEAR_LOSS_SCHEMAS)
  // Evaluation of a cross-entropy head without its logits (ops/linear_evaluation.cpp says what it returns).
  m.def("linear_cross_entropy_evaluate(Tensor input, Tensor linear_weight, Tensor? linear_bias, Tensor target, "
        "int ignore_index, int? chunk_rows, int? chunk_bytes) -> (Tensor, Tensor, Tensor, Tensor)");
  LOSSEXT_FOR_EACH_ACTIVATION(LOSSEXT_DEFINE_ACTIVATION_SCHEMAS)
}

#undef LOSSEXT_DEFINE_ACTIVATION_SCHEMAS
#undef LOSSEXT_DEFINE_ROW_STATISTICS_SCHEMAS
#undef LOSSEXT_DEFINE_LINEAR_LOSS_SCHEMAS
#undef LOSSEXT_LINEAR_LOSS_ARGUMENTS
#undef LOSSEXT_DEFINE_ROW_LOSS_SCHEMAS

}  // namespace
}  // namespace lossext
