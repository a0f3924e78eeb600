// CPU kernels of every activation op: the op layer (ops/activation_ops.h) run by
// the CPU driver (activation_driver.h), registered for the CPU dispatch key.
#include <torch/library.h>

#include "activation_driver.h"

namespace lossext {
namespace {

TORCH_LIBRARY_IMPL(lossext, CPU, m) { register_activation_kernels<cpu::CpuActivationDriver>(m); }

}  // namespace
}  // namespace lossext
