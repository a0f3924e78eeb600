// CUDA kernels of every activation op: the op layer (ops/activation_ops.h) run by
// the CUDA driver (activation_driver.cuh), registered for the CUDA dispatch key.
#include <torch/library.h>

#include "activation_driver.cuh"

namespace lossext {
namespace {

TORCH_LIBRARY_IMPL(lossext, CUDA, m) { register_activation_kernels<cuda::CudaActivationDriver>(m); }

}  // namespace
}  // namespace lossext
