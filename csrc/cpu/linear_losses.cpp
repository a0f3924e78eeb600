// CPU kernels of the fused linear + loss ops: the chunk loop of
// linear_loss_op.h with the CPU row-loss driver, registered for the CPU
// dispatch key for every row loss.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <climits>
#include <cstdint>

#include "ops/linear_loss_op.h"
#include "losses/all_losses.h"
#include "cpu/row_loss_driver.h"

// MKL's mixed-precision GEMMs, C = alpha op(A) op(B) + beta C with bfloat16
// or float16 A and B and a float32 C (cblas_gemm_bf16bf16f32 and
// cblas_gemm_f16f16f32, LP64 interface). ATen has no CPU product with a
// wider output than its inputs (aten::mm.dtype and addmm.dtype are
// CUDA-only; at::native::mkldnn_matmul requires the result in the inputs'
// dtype, and the cpublas bf16 -> fp32 gemm is not exported), but the x86-64
// wheels of torch link MKL statically and export these from libtorch_cpu.
// They are declared weak: where torch was built without MKL they resolve to
// null and the weight gradient falls back to a half-precision product per
// chunk added into the fp32 sum.
extern "C" {
void cblas_gemm_bf16bf16f32(int layout, int transa, int transb, int m, int n, int k, float alpha,
                            const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta, float* c,
                            int ldc) __attribute__((weak));
void cblas_gemm_f16f16f32(int layout, int transa, int transb, int m, int n, int k, float alpha, const uint16_t* a,
                          int lda, const uint16_t* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}

namespace lossext {
namespace cpu {
namespace {

// CBLAS_LAYOUT and CBLAS_TRANSPOSE values (mkl_cblas.h).
constexpr int kCblasRowMajor = 101;
constexpr int kCblasNoTrans = 111;
constexpr int kCblasTrans = 112;

using HalfGemm = void (*)(int, int, int, int, int, int, float, const uint16_t*, int, const uint16_t*, int, float,
                          float*, int);

struct CpuLinearLossBackend {
  using RowLossDriver = CpuRowLossDriver;
  // Reading the targets costs no sync here: ignored rows are left out of the products.
  static constexpr bool kCompactsIgnoredRows = true;
  // No caching allocator on CPU: the logits buffer is leased (ops/workspace.h).
  static constexpr bool kLeasesWorkspace = true;

  // accumulator (V, H) (+)= gradient (n, V)^T input (n, H).
  static void add_weight_gradient(at::Tensor& accumulator, const at::Tensor& gradient, const at::Tensor& input,
                                  bool accumulate) {
    if (gradient.scalar_type() == accumulator.scalar_type()) {
      at::addmm_out(accumulator, accumulator, gradient.t(), input, /*beta=*/accumulate ? 1 : 0);
      return;
    }
    // Half inputs into the fp32 accumulator: measured here (2 cores, AMX),
    // MKL's bf16 x bf16 -> fp32 product with beta = 1 took 70 ms for one
    // (32000 x 1024) x (1024 x 512) chunk against 112 ms for oneDNN's bf16
    // product alone (before adding it into the sum), and its sum is exact to
    // fp32 instead of rounded to bf16 once per chunk.
    const HalfGemm gemm = gradient.scalar_type() == at::kBFloat16 ? cblas_gemm_bf16bf16f32 : cblas_gemm_f16f16f32;
    const int64_t classes = accumulator.size(0), hidden = accumulator.size(1), rows = gradient.size(0);
    const bool fits_lp64 = classes <= INT_MAX && hidden <= INT_MAX && rows <= INT_MAX;
    TORCH_INTERNAL_ASSERT(gradient.is_contiguous() && input.stride(1) == 1 && accumulator.is_contiguous());
    if (gemm == nullptr || !fits_lp64) {
      const at::Tensor product = at::mm(gradient.t(), input);
      accumulate ? accumulator.add_(product) : accumulator.copy_(product);
      return;
    }
    gemm(kCblasRowMajor, kCblasTrans, kCblasNoTrans, static_cast<int>(classes), static_cast<int>(hidden),
         static_cast<int>(rows), 1.0f, static_cast<const uint16_t*>(gradient.const_data_ptr()),
         static_cast<int>(gradient.stride(0)), static_cast<const uint16_t*>(input.const_data_ptr()),
         static_cast<int>(input.stride(0)), accumulate ? 1.0f : 0.0f, accumulator.data_ptr<float>(),
         static_cast<int>(hidden));
  }
};

#define LOSSEXT_REGISTER_CPU_LINEAR_LOSS(name, Loss)                                        \
  m.impl(#name "_linear_forward", &linear_loss_forward<Loss, CpuLinearLossBackend>);      \
  m.impl(#name "_linear_backward", &linear_loss_backward<Loss, CpuLinearLossBackend>);

TORCH_LIBRARY_IMPL(lossext, CPU, m) { LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_REGISTER_CPU_LINEAR_LOSS) }

#undef LOSSEXT_REGISTER_CPU_LINEAR_LOSS

}  // namespace
}  // namespace cpu
}  // namespace lossext
