// CUDA kernels of every row loss: the generic op (ops/row_loss_op.h) run by the
// CUDA driver (row_loss_driver.cuh), registered for the CUDA dispatch key.
#include <torch/library.h>

#include "losses/all_losses.h"
#include "row_loss_driver.cuh"

namespace lossext {
namespace {

#define LOSSEXT_REGISTER_CUDA_ROW_LOSS(name, Loss)                                   \
  m.impl(#name "_forward", &row_loss_forward<Loss, cuda::CudaRowLossDriver>);        \
  m.impl(#name "_forward_out", &row_loss_forward_out<Loss, cuda::CudaRowLossDriver>); \
  m.impl(#name "_backward", &row_loss_backward<Loss, cuda::CudaRowLossDriver>);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_REGISTER_CUDA_ROW_LOSS) }

#undef LOSSEXT_REGISTER_CUDA_ROW_LOSS

}  // namespace
}  // namespace lossext
