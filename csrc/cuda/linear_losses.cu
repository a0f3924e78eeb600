// CUDA kernels of the fused linear + loss ops: the chunk loop of
// linear_loss_op.h with the CUDA row-loss driver and cuBLAS products,
// registered for the CUDA dispatch key for every row loss. Nothing here
// reads device memory on the host, so the ops never synchronise (and can be
// captured in a CUDA graph).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/linear_loss_op.h"
#include "losses/all_losses.h"
#include "cuda/row_loss_driver.cuh"

namespace lossext {
namespace cuda {
namespace {

struct CudaLinearLossBackend {
  using RowLossDriver = CudaRowLossDriver;
  // Leaving ignored rows out would size the products from the targets' values,
  // a host sync: here every row runs, an ignored one with a zero gradient.
  static constexpr bool kCompactsIgnoredRows = false;
  // The caching allocator keeps freed blocks mapped: scratch is a plain allocation.
  static constexpr bool kLeasesWorkspace = false;

  // accumulator (V, H) (+)= gradient (n, V)^T input (n, H).
  static void add_weight_gradient(at::Tensor& accumulator, const at::Tensor& gradient, const at::Tensor& input,
                                  bool accumulate) {
    if (gradient.scalar_type() == accumulator.scalar_type()) {
      at::addmm_out(accumulator, accumulator, gradient.t(), input, /*beta=*/accumulate ? 1 : 0);
      return;
    }
    // Half inputs: cuBLAS writes the chunk's product in fp32 (mm's out_dtype
    // overload), added into the fp32 sum. addmm's out_dtype overload cannot
    // accumulate in place: it requires `self` in the inputs' dtype.
    if (!accumulate) {
      at::mm_out(accumulator, gradient.t(), input, at::kFloat);
      return;
    }
    accumulator.add_(at::mm(gradient.t(), input, at::kFloat));
  }
};

#define LOSSEXT_REGISTER_CUDA_LINEAR_LOSS(name, Loss)                                        \
  m.impl(#name "_linear_forward", &linear_loss_forward<Loss, CudaLinearLossBackend>);      \
  m.impl(#name "_linear_backward", &linear_loss_backward<Loss, CudaLinearLossBackend>);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_REGISTER_CUDA_LINEAR_LOSS) }

#undef LOSSEXT_REGISTER_CUDA_LINEAR_LOSS

}  // namespace
}  // namespace cuda
}  // namespace lossext
