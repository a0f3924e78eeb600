// Evaluation of a classifier head without its logits: per row, the
// cross-entropy, the log-sum-exp, the predicted class and the target's rank,
// from input (N, H), linear_weight (V, H) and linear_bias (V,) in chunks of
// rows, as the fused training ops run (linear_loss_op.h), so validating a
// large-vocabulary model needs no more memory than training it.
//
//   linear_cross_entropy_evaluate(input, linear_weight, linear_bias, target, ignore_index, chunk_rows,
//                                 chunk_bytes) -> (loss, log_sum_exp, predicted, target_rank)
//     loss (N,) = lse - o_t, the unweighted, unsmoothed cross-entropy (0 for ignored rows);
//     log_sum_exp (N,) = log sum_j exp(o_j), both in fp32 (fp64 for fp64 inputs);
//     predicted (N,) int64 = the first class with the largest logit;
//     target_rank (N,) int64 = how many classes score strictly higher than the target (-1 for
//     ignored rows): the row counts for top-k accuracy when target_rank < k, ties in its favour,
//     as lossext.metrics.top_k_accuracy counts them.
// The schema is in ops/schemas.cpp. Written with ATen operations only, so one CompositeExplicitAutograd kernel
// serves every device. An out-of-range target fails an asynchronous assert
// (no host sync on CUDA).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <string>
#include <tuple>

#include "ops/linear_loss_op.h"

namespace lossext {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> linear_cross_entropy_evaluate(
    const at::Tensor& input_arg, const at::Tensor& linear_weight, const c10::optional<at::Tensor>& linear_bias,
    const at::Tensor& target, int64_t ignore_index, c10::optional<int64_t> chunk_rows,
    c10::optional<int64_t> chunk_bytes) {
  const std::string op = "lossext::linear_cross_entropy_evaluate";
  check_linear_loss_arguments(op, input_arg, linear_weight, linear_bias, target);
  TORCH_CHECK(target.dim() == 1, op, ": target must have shape (N,) = (", input_arg.size(0), ",), got ",
              target.sizes());
  const auto tt = target.scalar_type();
  TORCH_CHECK(tt == at::kLong || tt == at::kInt || tt == at::kByte, op,
              ": target must hold class indices as int64, int32 or uint8, got ", tt);
  const int64_t rows = input_arg.size(0), classes = linear_weight.size(0);
  const auto acc = accumulation_dtype(input_arg.scalar_type());
  const at::Tensor x = input_arg.contiguous();
  const at::Tensor w = blas_layout(linear_weight);
  const at::Tensor t = target.to(at::kLong);
  const at::Tensor ignored = t == ignore_index;
  at::_assert_async((ignored | ((t >= 0) & (t < classes))).all(), op + ": a target is out of bounds");
  const at::Tensor safe_target = at::where(ignored, 0, t);

  const int64_t chunk =
      std::max<int64_t>(1, std::min(linear_loss_chunk_rows(op, chunk_rows, chunk_bytes, classes, x.element_size()),
                                    rows));
  at::Tensor logits = at::empty({std::min(chunk, rows), classes}, x.options());
  at::Tensor loss = at::empty({rows}, x.options().dtype(acc));
  at::Tensor log_sum_exp = at::empty({rows}, x.options().dtype(acc));
  at::Tensor predicted = at::empty({rows}, x.options().dtype(at::kLong));
  at::Tensor target_rank = at::empty({rows}, x.options().dtype(at::kLong));
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t n = std::min(chunk, rows - begin);
    at::Tensor buffer = logits.narrow(0, 0, n);
    if (linear_bias.has_value() && linear_bias->defined()) {
      at::addmm_out(buffer, *linear_bias, x.narrow(0, begin, n), w.t());
    } else {
      at::mm_out(buffer, x.narrow(0, begin, n), w.t());
    }
    // The statistics in the accumulation dtype (a widened copy of the chunk for half inputs).
    const at::Tensor values = buffer.to(acc);
    const at::Tensor target_logit = values.gather(1, safe_target.narrow(0, begin, n).unsqueeze(1)).squeeze(1);
    const at::Tensor chunk_ignored = ignored.narrow(0, begin, n);
    at::Tensor chunk_lse = log_sum_exp.narrow(0, begin, n);
    at::logsumexp_out(chunk_lse, values, {1});
    loss.narrow(0, begin, n).copy_(at::where(chunk_ignored, 0, chunk_lse - target_logit));
    at::Tensor chunk_predicted = predicted.narrow(0, begin, n);
    at::argmax_out(chunk_predicted, values, 1);
    const at::Tensor higher = (values > target_logit.unsqueeze(1)).sum(1);
    target_rank.narrow(0, begin, n).copy_(at::where(chunk_ignored, -1, higher));
  }
  return {loss, log_sum_exp, predicted, target_rank};
}

TORCH_LIBRARY_IMPL(lossext, CompositeExplicitAutograd, m) {
  m.impl("linear_cross_entropy_evaluate", &linear_cross_entropy_evaluate);
}

}  // namespace
}  // namespace lossext
