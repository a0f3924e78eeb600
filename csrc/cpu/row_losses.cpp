// CPU kernels of every row loss: the generic op (ops/row_loss_op.h) run by the
// CPU driver (row_loss_driver.h), registered for the CPU dispatch key.
#include <torch/library.h>

#include "losses/all_losses.h"
#include "row_loss_driver.h"

namespace lossext {
namespace {

#define LOSSEXT_REGISTER_CPU_ROW_LOSS(name, Loss)                                    \
  m.impl(#name "_forward", &row_loss_forward<Loss, cpu::CpuRowLossDriver>);          \
  m.impl(#name "_forward_out", &row_loss_forward_out<Loss, cpu::CpuRowLossDriver>);  \
  m.impl(#name "_backward", &row_loss_backward<Loss, cpu::CpuRowLossDriver>);

TORCH_LIBRARY_IMPL(lossext, CPU, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_REGISTER_CPU_ROW_LOSS) }

#undef LOSSEXT_REGISTER_CPU_ROW_LOSS

}  // namespace
}  // namespace lossext
