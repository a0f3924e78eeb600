// CPU kernels of every row loss's block ops: the generic ops
// (row_statistics_op.h) run by the CPU driver (row_statistics_driver.h),
// registered for the CPU dispatch key.
#include <torch/library.h>

#include "losses/all_losses.h"
#include "cpu/row_statistics_driver.h"

namespace lossext {
namespace {

#define LOSSEXT_REGISTER_CPU_ROW_STATISTICS(name, Loss)                                                      \
  m.impl(#name "_block_statistics", &row_block_statistics<Loss, cpu::CpuRowStatisticsDriver>);               \
  m.impl(#name "_combine_statistics", &row_combine_statistics<Loss, cpu::CpuRowStatisticsDriver>);           \
  m.impl(#name "_rebase_statistics", &row_rebase_statistics<Loss, cpu::CpuRowStatisticsDriver>);             \
  m.impl(#name "_block_loss_and_gradient", &row_block_loss_and_gradient<Loss, cpu::CpuRowStatisticsDriver>);

TORCH_LIBRARY_IMPL(lossext, CPU, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_REGISTER_CPU_ROW_STATISTICS) }

#undef LOSSEXT_REGISTER_CPU_ROW_STATISTICS

}  // namespace
}  // namespace lossext
