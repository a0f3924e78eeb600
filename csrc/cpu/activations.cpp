// CPU kernels of every activation op: the op layer (ops/activation_ops.h) run by
// the CPU driver (activation_driver.h), registered for the CPU dispatch key.
#include <torch/library.h>

#include "activation_driver.h"

namespace lossext {
namespace {

using CpuOps = ActivationOps<cpu::CpuActivationDriver>;

#define LOSSEXT_REGISTER_CPU_ACTIVATION_OP(name) m.impl(#name, &CpuOps::name);

TORCH_LIBRARY_IMPL(lossext, CPU, m) { LOSSEXT_FOR_EACH_ACTIVATION_OP(LOSSEXT_REGISTER_CPU_ACTIVATION_OP) }

#undef LOSSEXT_REGISTER_CPU_ACTIVATION_OP

}  // namespace
}  // namespace lossext
