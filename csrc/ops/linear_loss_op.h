// The device-independent half of the fused linear + row-loss ops (the
// classifier head without its logits): argument checks and the chunk loop.
//
// For input x (N, H), linear_weight W (V, H), bias b (V,) and a row loss l,
// the head's output is l(x W^T + b, target). Its gradients, with G the
// gradient of l with respect to the logits (N, V), are
//   d/dx = G W,   d/dW = G^T x,   d/db = sum_rows G.
// The rows are taken in chunks of c rows; per chunk
//   1. logits = x_chunk W^T + b into ONE reused (c, V) buffer (at::mm/addmm:
//      MKL or oneDNN on CPU, cuBLAS on CUDA);
//   2. the row-loss driver (the same one lossext.<loss> runs) writes the
//      chunk's loss per row and turns the buffer into G_chunk in place;
//   3. grad_input[chunk] = G_chunk W, grad_weight += G_chunk^T x_chunk,
//      grad_bias += column sums of G_chunk,
// before the next chunk overwrites the buffer. So the largest temporary is
// one chunk of logits, not N x V. The reduction's denominator (the sum of
// the target weights) is computed for all rows before the loop and handed to
// every chunk, so a chunk's G is already scaled for the whole batch's mean.
//
// A backend supplies a struct with
//   using RowLossDriver = ...;                  // row_loss_op.h's Driver
//   static constexpr bool kCompactsIgnoredRows; // may read the targets on the host
//   static constexpr bool kLeasesWorkspace;     // scratch from workspace.h's pool
//   static void add_weight_gradient(at::Tensor& accumulator, const at::Tensor& gradient,
//                                   const at::Tensor& input, bool accumulate);
// where add_weight_gradient writes gradient^T input into an accumulator in
// the accumulation dtype (fp32 for half inputs, whose products are half),
// added to its contents when `accumulate`, over them otherwise.
// (cpu/linear_losses.cpp, cuda/linear_losses.cu). A backend that compacts
// ignored rows (CPU) runs the chunk loop over the rows whose target is not
// ignore_index only, so ignored rows cost no matrix product; CUDA cannot size
// its products from the targets without a host sync, so there ignored rows
// run through the products with a zero gradient.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <string>
#include <tuple>

#include "ops/row_loss_op.h"
#include "ops/workspace.h"

namespace lossext {

// The default size of the one reused logits buffer: 128 MiB, 1024 rows of
// 32000 fp32 logits or 2048 of bf16 (chunk rows = budget / (V * element
// size), at least 1). Fewer rows per chunk cost time: every chunk streams
// the V x H weight-gradient sum through memory once more (8 V H bytes in
// fp32), and the products get shorter. Measured here at (N, H, V) = (4096,
// 512, 32000) bf16, fwd+bwd against the three unchunked products as torch.mm
// runs them (whose G^T x is slower than the MKL product used here): 1.46x
// with 256 rows per chunk, 1.28x with 512, 0.96x with 1024, 0.92x with 2048
// (on a loaded machine, so only the trend is reliable). It is a fixed number, never
// derived from free memory, so a run's chunking (and with it the rounding of
// the weight gradient's sum over chunks) does not depend on what else is
// allocated.
constexpr int64_t kDefaultLinearLossChunkBytes = int64_t(128) << 20;

// Which gradients a call computes: input, linear_weight, linear_bias, tensor_params.
using LinearLossGradMask = std::array<bool, 4>;

// The rows per chunk: chunk_rows when given, else as many rows as
// chunk_bytes of logits hold (kDefaultLinearLossChunkBytes when not given),
// at least one.
inline int64_t linear_loss_chunk_rows(const std::string& op, c10::optional<int64_t> chunk_rows,
                                      c10::optional<int64_t> chunk_bytes, int64_t classes, int64_t element_size) {
  if (chunk_rows.has_value()) {
    TORCH_CHECK(*chunk_rows >= 1, op, ": chunk_rows must be at least 1, got ", *chunk_rows);
    return *chunk_rows;
  }
  const int64_t budget = chunk_bytes.value_or(kDefaultLinearLossChunkBytes);
  TORCH_CHECK(budget >= 1, op, ": chunk_bytes must be positive, got ", budget);
  return std::max<int64_t>(1, budget / (classes * element_size));
}

// A matrix BLAS reads in place: unit stride in one dimension and a leading
// dimension covering the other. Anything else is copied once here instead of
// by every product of the loop.
inline at::Tensor blas_layout(const at::Tensor& m) {
  const bool rows_dense = m.stride(1) == 1 && m.stride(0) >= std::max<int64_t>(1, m.size(1));
  const bool columns_dense = m.stride(0) == 1 && m.stride(1) >= std::max<int64_t>(1, m.size(0));
  return rows_dense || columns_dense ? m : m.contiguous();
}

inline void check_linear_loss_arguments(const std::string& op, const at::Tensor& input,
                                        const at::Tensor& linear_weight,
                                        const c10::optional<at::Tensor>& linear_bias, const at::Tensor& target) {
  TORCH_CHECK(input.dim() == 2, op, ": input must be 2-D (N, H), got ", input.dim(), "-D with shape ",
              input.sizes());
  TORCH_CHECK(at::isFloatingType(input.scalar_type()), op,
              ": input must be float32, float64, float16 or bfloat16, got ", input.scalar_type());
  TORCH_CHECK(linear_weight.dim() == 2, op, ": linear_weight must be 2-D (V, H), got shape ", linear_weight.sizes());
  TORCH_CHECK(linear_weight.size(1) == input.size(1), op, ": linear_weight must have shape (V, H) with H = ",
              input.size(1), " (the input's last dimension), got ", linear_weight.sizes());
  TORCH_CHECK(linear_weight.size(0) >= 1, op, ": linear_weight must have at least one class (row), got shape ",
              linear_weight.sizes());
  TORCH_CHECK(linear_weight.scalar_type() == input.scalar_type(), op, ": linear_weight must have the input's dtype (",
              input.scalar_type(), "), got ", linear_weight.scalar_type());
  TORCH_CHECK(linear_weight.device() == input.device(), op, ": linear_weight must be on the input's device (",
              input.device(), "), got ", linear_weight.device());
  if (linear_bias.has_value() && linear_bias->defined()) {
    const at::Tensor& b = *linear_bias;
    TORCH_CHECK(b.dim() == 1 && b.size(0) == linear_weight.size(0), op, ": linear_bias must have shape (V,) = (",
                linear_weight.size(0), ",), got ", b.sizes());
    TORCH_CHECK(b.scalar_type() == input.scalar_type(), op, ": linear_bias must have the input's dtype (",
                input.scalar_type(), "), got ", b.scalar_type());
    TORCH_CHECK(b.device() == input.device(), op, ": linear_bias must be on the input's device (", input.device(),
                "), got ", b.device());
  }
  TORCH_CHECK(target.device() == input.device(), op, ": target must be on the input's device (", input.device(),
              "), got ", target.device());
  TORCH_CHECK(target.dim() >= 1 && target.size(0) == input.size(0), op, ": target must have N = ", input.size(0),
              " rows (the input's), got shape ", target.sizes());
}

// Scratch memory that never leaves the op: leased from the CPU pool (see
// workspace.h) on a backend without a caching allocator, a plain allocation
// on one with (CUDA's).
template <typename Backend>
at::Tensor scratch_tensor(c10::optional<WorkspaceLease>& lease, at::IntArrayRef sizes, const at::TensorOptions& options) {
  if constexpr (Backend::kLeasesWorkspace) {
    lease.emplace(sizes, options.dtype().toScalarType());
    return lease->tensor();
  } else {
    return at::empty(sizes, options);
  }
}

// The op's outputs: the loss as `reduction` says, then the gradients grad_mask
// asks for (each an empty tensor otherwise): grad_input (N, H), grad_weight
// (V, H), grad_bias (V,) in their tensors' dtypes, and the tensor params'
// gradient (P,) in the accumulation dtype, summed over rows in row order.
using LinearLossOutputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The whole op. `upstream` is undefined in the forward (the gradients are
// those of the output itself) and the output's gradient in the backward
// (one value, or one per row for reduction none), which the driver folds
// into G before any product.
template <typename Loss, typename Backend>
LinearLossOutputs run_linear_loss(const at::Tensor& input_arg, const at::Tensor& linear_weight_arg,
                                  const c10::optional<at::Tensor>& linear_bias, const at::Tensor& target_arg,
                                  const c10::optional<at::Tensor>& weight, c10::ArrayRef<double> params,
                                  const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index,
                                  int64_t reduction_code, c10::optional<int64_t> chunk_rows,
                                  c10::optional<int64_t> chunk_bytes,
                                  LinearLossGradMask grad_mask, const at::Tensor& upstream_arg) {
  using Driver = typename Backend::RowLossDriver;
  constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
  const std::string op = std::string("lossext::") + Loss::kName + "_linear";
  check_linear_loss_arguments(op, input_arg, linear_weight_arg, linear_bias, target_arg);
  const Reduction reduction = checked_reduction(reduction_code);
  const bool has_bias = linear_bias.has_value() && linear_bias->defined();
  const bool want_input = grad_mask[0], want_weight = grad_mask[1], want_bias = grad_mask[2] && has_bias;
  const bool want_params = grad_mask[3];
  const bool with_grad = want_input || want_weight || want_bias || want_params;
  const int64_t total_rows = input_arg.size(0), hidden = input_arg.size(1), classes = linear_weight_arg.size(0);
  const auto dtype = input_arg.scalar_type();
  const auto acc = accumulation_dtype(dtype);
  const auto options = input_arg.options();

  // x is read by BLAS per chunk and by the weight gradient's product as a
  // row-major matrix: made dense once (N x H, small next to the products).
  at::Tensor x = input_arg.contiguous();
  at::Tensor target = target_arg;
  at::Tensor upstream = upstream_arg;
  const at::Tensor w = blas_layout(linear_weight_arg);

  // Rows whose target is ignore_index contribute nothing: a backend that may
  // read the targets leaves them out of the products altogether.
  at::Tensor kept_rows;
  if constexpr (Backend::kCompactsIgnoredRows && !kDense) {
    const at::Tensor kept = (target != ignore_index).nonzero().squeeze(1);
    if (kept.size(0) < total_rows) {
      kept_rows = kept;
      x = x.index_select(0, kept_rows);
      target = target.index_select(0, kept_rows);
      if (upstream.defined() && reduction == Reduction::None) upstream = upstream.index_select(0, kept_rows);
    }
  }
  const int64_t rows = x.size(0);
  const int64_t chunk =
      std::min(linear_loss_chunk_rows(op, chunk_rows, chunk_bytes, classes, input_arg.element_size()), rows);
  c10::optional<WorkspaceLease> logits_lease, weight_grad_lease;
  at::Tensor logits = scratch_tensor<Backend>(logits_lease, {chunk, classes}, options);

  // Validates the loss's own arguments (weight, params, tensor_params, target
  // dtype) on the first chunk, then the reduction's denominator over all rows.
  RowLossProblem all = prepare_row_loss<Loss>(logits, target.narrow(0, 0, chunk), weight, params, tensor_params,
                                              ignore_index, reduction_code);
  all.target = kDense ? target : target.contiguous();
  all.rows = rows;
  const at::Tensor target_weight_sum = Driver::target_weight_sum(all);

  constexpr int kTensorParams = TensorParamCount<Loss>::value;
  at::Tensor row_values = at::empty({rows}, options.dtype(acc));
  // The driver writes each row's tensor-param derivatives whenever it writes a gradient.
  at::Tensor row_param_grads = at::zeros({with_grad ? rows : 0, kTensorParams}, options.dtype(acc));
  at::Tensor grad_input_rows = want_input ? at::empty({rows, hidden}, options) : at::Tensor();
  // The weight gradient is a sum over chunks: accumulated in fp32 for half
  // inputs (in bf16 it would round at every chunk, a known cause of
  // divergence in other fused heads), rounded to the weight's dtype once.
  // The first chunk's product overwrites it (no pass to clear V x H values first) unless no row runs.
  // For half inputs it is scratch (the returned gradient is its rounded copy).
  at::Tensor weight_grad_sum;
  if (want_weight) {
    if (rows == 0) {
      weight_grad_sum = at::zeros({classes, hidden}, options.dtype(acc));
    } else if (acc != dtype) {
      weight_grad_sum = scratch_tensor<Backend>(weight_grad_lease, {classes, hidden}, options.dtype(acc));
    } else {
      weight_grad_sum = at::empty({classes, hidden}, options);
    }
  }
  at::Tensor bias_grad_sum = want_bias ? at::zeros({classes}, options.dtype(acc)) : at::Tensor();
  at::Tensor no_gradient = at::empty({0}, options);
  const typename Loss::Params loss_params = Loss::make_params(params.data());

  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t n = std::min(chunk, rows - begin);
    const at::Tensor x_chunk = x.narrow(0, begin, n);
    at::Tensor buffer = logits.narrow(0, 0, n);
    if (has_bias) {
      at::addmm_out(buffer, *linear_bias, x_chunk, w.t());
    } else {
      at::mm_out(buffer, x_chunk, w.t());
    }
    const RowLossProblem p = prepare_row_loss<Loss>(buffer, target.narrow(0, begin, n), weight, params,
                                                    tensor_params, ignore_index, reduction_code);
    at::Tensor values = row_values.narrow(0, begin, n);
    at::Tensor chunk_param_grads = with_grad ? row_param_grads.narrow(0, begin, n) : row_param_grads;
    const at::Tensor chunk_upstream =
        upstream.defined() && reduction == Reduction::None ? upstream.narrow(0, begin, n) : upstream;
    // The gradient overwrites the logits in place (both drivers read a
    // row's logits before writing its gradient).
    Driver::template run<Loss>(p, loss_params, target_weight_sum, chunk_upstream, values,
                               with_grad ? buffer : no_gradient, chunk_param_grads);
    if (!with_grad) continue;
    if (want_input) {
      at::Tensor grad_chunk = grad_input_rows.narrow(0, begin, n);
      at::mm_out(grad_chunk, buffer, w);
    }
    if (want_weight) Backend::add_weight_gradient(weight_grad_sum, buffer, x_chunk, /*accumulate=*/begin > 0);
    if (want_bias) bias_grad_sum.add_(buffer.sum(0, /*keepdim=*/false, acc));
  }

  // Ignored rows: a zero loss (for reduction none) and a zero gradient.
  if (kept_rows.defined() && reduction == Reduction::None) {
    row_values = at::zeros({total_rows}, options.dtype(acc)).index_copy_(0, kept_rows, row_values);
  }
  at::Tensor loss = reduce_row_values(row_values, target_weight_sum, reduction, dtype);
  // Outputs must not alias one another: each gradient not asked for is its own empty tensor.
  const auto not_computed = [&] { return at::empty({0}, options); };
  at::Tensor grad_input = not_computed();
  if (want_input) {
    grad_input = kept_rows.defined() ? at::zeros({total_rows, hidden}, options).index_copy_(0, kept_rows, grad_input_rows)
                                     : grad_input_rows;
  }
  at::Tensor grad_weight = want_weight ? weight_grad_sum.to(dtype) : not_computed();
  at::Tensor grad_bias = want_bias ? bias_grad_sum.to(dtype) : not_computed();
  at::Tensor param_grad = want_params ? row_param_grads.sum(0) : at::empty({0}, options.dtype(acc));
  return {loss, grad_input, grad_weight, grad_bias, param_grad};
}

// <name>_linear_forward: the loss, with the gradients grad_mask asks for
// computed in the same pass over the chunks (for an upstream gradient of 1).
template <typename Loss, typename Backend>
LinearLossOutputs linear_loss_forward(const at::Tensor& input, const at::Tensor& linear_weight,
                                      const c10::optional<at::Tensor>& linear_bias, const at::Tensor& target,
                                      const c10::optional<at::Tensor>& weight, c10::ArrayRef<double> params,
                                      const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index,
                                      int64_t reduction, c10::optional<int64_t> chunk_rows, c10::optional<int64_t> chunk_bytes,
                                      LinearLossGradMask grad_mask) {
  return run_linear_loss<Loss, Backend>(input, linear_weight, linear_bias, target, weight, params, tensor_params,
                                        ignore_index, reduction, chunk_rows, chunk_bytes, grad_mask, at::Tensor());
}

// <name>_linear_backward: the gradients recomputed from the inputs, scaled
// by grad_output (one value, or (N,) for reduction none).
template <typename Loss, typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> linear_loss_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& linear_weight,
    const c10::optional<at::Tensor>& linear_bias, const at::Tensor& target, const c10::optional<at::Tensor>& weight,
    c10::ArrayRef<double> params, const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index,
    int64_t reduction, c10::optional<int64_t> chunk_rows, c10::optional<int64_t> chunk_bytes, LinearLossGradMask grad_mask) {
  const std::string op = std::string("lossext::") + Loss::kName + "_linear_backward";
  TORCH_CHECK(grad_output.device() == input.device(), op, ": grad_output must be on the input's device (",
              input.device(), "), got ", grad_output.device());
  if (checked_reduction(reduction) == Reduction::None) {
    TORCH_CHECK(grad_output.dim() == 1 && grad_output.size(0) == input.size(0), op,
                ": grad_output must have shape (N,) = (", input.size(0), ",) for reduction none, got ",
                grad_output.sizes());
  } else {
    TORCH_CHECK(grad_output.numel() == 1, op, ": grad_output must have one element for a reduced loss, got shape ",
                grad_output.sizes());
  }
  const at::Tensor upstream = grad_output.to(accumulation_dtype(input.scalar_type())).contiguous().view({-1});
  auto outputs = run_linear_loss<Loss, Backend>(input, linear_weight, linear_bias, target, weight, params,
                                                tensor_params, ignore_index, reduction, chunk_rows, chunk_bytes,
                                                grad_mask, upstream);
  return {std::get<1>(outputs), std::get<2>(outputs), std::get<3>(outputs), std::get<4>(outputs)};
}

}  // namespace lossext
