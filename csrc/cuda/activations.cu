// CUDA kernels of every activation op: the op layer (ops/activation_ops.h) run by
// the CUDA driver (activation_driver.cuh), registered for the CUDA dispatch key.
#include <torch/library.h>

#include "activation_driver.cuh"

namespace lossext {
namespace {

using CudaOps = ActivationOps<cuda::CudaActivationDriver>;

#define LOSSEXT_REGISTER_CUDA_ACTIVATION_OP(name) m.impl(#name, &CudaOps::name);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) { LOSSEXT_FOR_EACH_ACTIVATION_OP(LOSSEXT_REGISTER_CUDA_ACTIVATION_OP) }

#undef LOSSEXT_REGISTER_CUDA_ACTIVATION_OP

}  // namespace
}  // namespace lossext
