// The schemas of every row loss's block ops (row_statistics_op.h), beside the
// one-shot ops of registration.cpp. Kernels per backend in
// cpu/row_statistics.cpp and cuda/row_statistics.cu; fake kernels in
// lossext/_row_statistics.py.
//
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
#include <torch/library.h>

#include "losses/all_losses.h"
#include "row_statistics_op.h"

namespace lossext {
namespace {

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

TORCH_LIBRARY_FRAGMENT(lossext, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_DEFINE_ROW_STATISTICS_SCHEMAS) }

#undef LOSSEXT_DEFINE_ROW_STATISTICS_SCHEMAS

}  // namespace
}  // namespace lossext
