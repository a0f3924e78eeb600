// The device-independent half of every row-loss op: argument checks, the
// canonical (N, C) views the drivers expect, output allocation and the final
// reduction. A backend supplies a Driver with
//   static at::Tensor target_weight_sum(const RowLossProblem&)
//   template <class Loss> static void run(const RowLossProblem&, const typename Loss::Params&,
//                                         const at::Tensor& target_weight_sum,
//                                         const at::Tensor& upstream, at::Tensor& row_values,
//                                         at::Tensor& grad_input, at::Tensor& row_param_grads)
// (grad_input and row_param_grads have no elements when no gradient is wanted;
// row_param_grads is (N, kNumTensorParams) in the accumulation dtype).
// and instantiates row_loss_forward / row_loss_backward with it (see
// cpu/row_losses.cpp and cuda/row_losses.cu).
#pragma once

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <c10/util/ArrayRef.h>

#include <limits>
#include <string>
#include <tuple>
#include <type_traits>

#include "common/accumulation.h"
#include "losses/row_loss.h"

namespace lossext {

// Whether Loss declares param_error (see losses/row_loss.h).
template <typename Loss, typename = void>
struct HasParamError : std::false_type {};
template <typename Loss>
struct HasParamError<Loss, std::void_t<decltype(Loss::param_error(static_cast<const double*>(nullptr)))>>
    : std::true_type {};

// The validated arguments of one call, in the layout the drivers read.
struct RowLossProblem {
  at::Tensor input;         // (N, C), stride(1) == 1, any row stride
  at::Tensor target;        // (N,) int64/int32/uint8, contiguous; or (N, C) coefficients (kDenseTarget)
  at::Tensor class_weight;  // (C,) in the accumulation dtype, contiguous; undefined if none
  at::Tensor tensor_params; // (kNumTensorParams,) in the accumulation dtype, contiguous; undefined if none
  int64_t rows = 0;
  int64_t classes = 0;
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
  double logit_softcap = 0;  // c of a kLogitSoftcap loss (row_loss.h), 0 for none
};

inline Reduction checked_reduction(int64_t reduction) {
  TORCH_CHECK(reduction >= 0 && reduction <= 2,
              "lossext: reduction must be 0 (none), 1 (mean) or 2 (sum), got ", reduction);
  return static_cast<Reduction>(reduction);
}

// num_classes: the row's class count when input holds a block of its classes
// (row_statistics_op.h; label smoothing spreads eps over all of them), 0 for input.size(1).
template <typename Loss>
RowLossProblem prepare_row_loss(const at::Tensor& input, const at::Tensor& target,
                                const c10::optional<at::Tensor>& weight, c10::ArrayRef<double> params,
                                const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index,
                                int64_t reduction, int64_t num_classes = 0) {
  constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
  const std::string op = std::string("lossext::") + Loss::kName;
  TORCH_CHECK(static_cast<int64_t>(params.size()) == Loss::kNumParams, op, ": expected ", Loss::kNumParams,
              " values in params, got ", params.size());
  if constexpr (HasParamError<Loss>::value) {
    const char* error = Loss::param_error(params.data());
    TORCH_CHECK(error == nullptr, op, ": ", error, " (params = ", params, ")");
  }
  TORCH_CHECK(input.dim() == 2, op, ": input must be 2-D (N, C), got ", input.dim(), "-D with shape ",
              input.sizes());
  TORCH_CHECK(at::isFloatingType(input.scalar_type()), op,
              ": input must be float32, float64, float16 or bfloat16, got ", input.scalar_type());
  TORCH_CHECK(input.size(1) >= 1, op, ": input must have at least one class, got shape ", input.sizes());
  TORCH_CHECK(target.device() == input.device(), op, ": target must be on the input's device (",
              input.device(), "), got ", target.device());

  RowLossProblem p;
  p.rows = input.size(0);
  p.classes = input.size(1);
  p.ignore_index = ignore_index;
  p.reduction = checked_reduction(reduction);
  p.logit_softcap = logit_softcap_of<Loss>(Loss::make_params(params.data()));
  // Rows may have any stride; the class dimension must be dense for vector loads.
  p.input = input.stride(1) == 1 ? input : input.contiguous();
  const auto acc = accumulation_dtype(input.scalar_type());

  if (weight.has_value() && weight->defined()) {
    const at::Tensor& w = *weight;
    TORCH_CHECK(w.device() == input.device(), op, ": weight must be on the input's device (", input.device(),
                "), got ", w.device());
    TORCH_CHECK(w.dim() == 1 && w.size(0) == p.classes, op, ": weight must have shape (C,) = (", p.classes,
                ",), got ", w.sizes());
    TORCH_CHECK(w.scalar_type() == input.scalar_type(), op, ": weight must have the input's dtype (",
                input.scalar_type(), "), got ", w.scalar_type());
    p.class_weight = w.to(acc).contiguous();
  }

  constexpr int kTensorParams = TensorParamCount<Loss>::value;
  const bool has_tensor_params = tensor_params.has_value() && tensor_params->defined();
  TORCH_CHECK(has_tensor_params == (kTensorParams > 0), op,
              kTensorParams > 0 ? ": tensor_params must hold the loss's learnable scalars"
                                : ": this loss takes no tensor_params");
  if (has_tensor_params) {
    const at::Tensor& tp = *tensor_params;
    TORCH_CHECK(tp.dim() == 1 && tp.size(0) == kTensorParams, op, ": tensor_params must have shape (",
                kTensorParams, ",), got ", tp.sizes());
    TORCH_CHECK(tp.device() == input.device(), op, ": tensor_params must be on the input's device (",
                input.device(), "), got ", tp.device());
    TORCH_CHECK(at::isFloatingType(tp.scalar_type()), op, ": tensor_params must be floating point, got ",
                tp.scalar_type());
    p.tensor_params = tp.to(acc).contiguous();
  }

  if constexpr (kDense) {
    TORCH_CHECK(target.sizes() == input.sizes(), op, ": probability target must have the input's shape ",
                input.sizes(), ", got ", target.sizes());
    TORCH_CHECK(at::isFloatingType(target.scalar_type()), op,
                ": probability target must be floating point, got ", target.scalar_type());
    // Fold label smoothing (params[0]) and class weights into one coefficient
    // row per sample: c = w ((1 - eps) q + eps / C), see cross_entropy_probabilities.h.
    const double eps = params[0];
    at::Tensor coefficients = target.to(acc);
    const int64_t smoothing_classes = num_classes > 0 ? num_classes : p.classes;
    if (eps != 0.0) coefficients = coefficients * (1.0 - eps) + eps / static_cast<double>(smoothing_classes);
    if (p.class_weight.defined()) coefficients = coefficients * p.class_weight;
    p.target = coefficients.contiguous();
    p.class_weight = at::Tensor();
  } else {
    TORCH_CHECK(target.dim() == 1 && target.size(0) == p.rows, op, ": target must have shape (N,) = (", p.rows,
                ",), got ", target.sizes());
    const auto tt = target.scalar_type();
    TORCH_CHECK(tt == at::kLong || tt == at::kInt || tt == at::kByte, op,
                ": target must hold class indices as int64, int32 or uint8, got ", tt);
    p.target = target.contiguous();
  }
  return p;
}

// The sum of a 1-D tensor in an order that depends on its length alone, so
// the same for every thread count. at::sum splits one long reduction among
// its threads (one partial sum each, then combined), which moved a loss over
// 65536 rows by an ulp between 1 and 2 threads. Here each block of kBlock
// values is one reduction of its own (a sum over dim 1 is split between
// blocks, never inside one), then the block sums are summed the same way,
// until at most kBlock values remain: a sum that short runs on one thread
// (below ATen's grain of 32768 elements).
inline at::Tensor sum_in_fixed_order(at::Tensor values) {
  constexpr int64_t kBlock = 4096;
  while (values.numel() > kBlock) {
    const int64_t length = values.numel();
    const int64_t whole = length / kBlock * kBlock;
    at::Tensor block_sums = values.narrow(0, 0, whole).view({-1, kBlock}).sum(1);
    if (whole < length) block_sums = at::cat({block_sums, values.narrow(0, whole, length - whole).sum().view({1})});
    values = block_sums;
  }
  return values.sum();
}

// Sum (or copy, for reduction none) the per-row contributions into the op's output.
inline at::Tensor reduce_row_values(const at::Tensor& row_values, const at::Tensor& target_weight_sum,
                                    Reduction reduction, at::ScalarType out_dtype) {
  if (reduction == Reduction::None) return row_values.to(out_dtype);
  at::Tensor total = sum_in_fixed_order(row_values);
  if (reduction == Reduction::Mean) {
    // A mean over no weight (empty batch, all rows ignored) is 0/0 in PyTorch: NaN.
    total = at::where(target_weight_sum == 0, std::numeric_limits<double>::quiet_NaN(), total);
  }
  return total.to(out_dtype);
}

// Per-row partial derivatives of the output with respect to the tensor
// params: (N, kNumTensorParams) when a gradient is wanted, else empty.
template <typename Loss>
at::Tensor empty_row_param_grads(const RowLossProblem& p, bool compute_grad) {
  constexpr int kTensorParams = TensorParamCount<Loss>::value;
  const auto acc = accumulation_dtype(p.input.scalar_type());
  return at::zeros({compute_grad ? p.rows : 0, kTensorParams}, p.input.options().dtype(acc));
}

template <typename Loss, typename Driver>
std::tuple<at::Tensor, at::Tensor, at::Tensor> row_loss_forward(
    const at::Tensor& input, const at::Tensor& target, const c10::optional<at::Tensor>& weight,
    c10::ArrayRef<double> params, const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index,
    int64_t reduction, bool compute_grad) {
  const RowLossProblem p =
      prepare_row_loss<Loss>(input, target, weight, params, tensor_params, ignore_index, reduction);
  const auto acc = accumulation_dtype(input.scalar_type());
  at::Tensor row_values = at::empty({p.rows}, input.options().dtype(acc));
  at::Tensor grad_input = compute_grad ? at::empty({p.rows, p.classes}, input.options())
                                       : at::empty({0}, input.options());
  at::Tensor row_param_grads = empty_row_param_grads<Loss>(p, compute_grad);
  const at::Tensor weight_sum = Driver::target_weight_sum(p);
  if (p.rows > 0) {
    Driver::template run<Loss>(p, Loss::make_params(params.data()), weight_sum, at::Tensor(), row_values,
                               grad_input, row_param_grads);
  }
  return {reduce_row_values(row_values, weight_sum, p.reduction, input.scalar_type()), grad_input,
          row_param_grads};
}

// Whether a buffer an op writes shares memory with a tensor it reads: not at all, as the very same
// elements (the same storage, offset, shape and strides), or in part. at::get_overlap_status cannot
// tell for a strided tensor (TooHard): in the same storage that counts as in part.
enum class Overlap { None, Same, Partial };
inline Overlap overlap_of(const at::Tensor& written, const at::Tensor& read) {
  if (!read.defined()) return Overlap::None;
  switch (at::get_overlap_status(written, read)) {
    case at::MemOverlapStatus::No: return Overlap::None;
    case at::MemOverlapStatus::Full: return Overlap::Same;
    case at::MemOverlapStatus::TooHard:
      return written.storage().is_alias_of(read.storage()) ? Overlap::Partial : Overlap::None;
    default: return Overlap::Partial;
  }
}

// The forward with the gradient written into a caller's buffer (for example
// the logits' own storage on CPU, where each row is read into a scratch row
// before its gradient is written, or a buffer reused across steps).
template <typename Loss, typename Driver>
at::Tensor row_loss_forward_out(const at::Tensor& input, const at::Tensor& target,
                                const c10::optional<at::Tensor>& weight, c10::ArrayRef<double> params,
                                const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index,
                                int64_t reduction, at::Tensor& grad_input) {
  const RowLossProblem p =
      prepare_row_loss<Loss>(input, target, weight, params, tensor_params, ignore_index, reduction);
  const std::string op = std::string("lossext::") + Loss::kName + "_forward_out";
  TORCH_CHECK(grad_input.device() == input.device(), op, ": grad_input must be on the input's device");
  TORCH_CHECK(grad_input.scalar_type() == input.scalar_type(), op, ": grad_input must have the input's dtype (",
              input.scalar_type(), "), got ", grad_input.scalar_type());
  TORCH_CHECK(grad_input.dim() == 2 && grad_input.size(0) == p.rows && grad_input.size(1) == p.classes &&
                  grad_input.is_contiguous(),
              op, ": grad_input must be a contiguous (N, C) = (", p.rows, ", ", p.classes, ") tensor, got shape ",
              grad_input.sizes(), grad_input.is_contiguous() ? "" : " (not contiguous)");
  // The drivers read each element of a row before they write its gradient, so grad_input may be the logits
  // themselves; a buffer over part of them (or of what else the drivers read) would be read after it was
  // written, a silently wrong result.
  TORCH_CHECK(overlap_of(grad_input, p.input) != Overlap::Partial, op,
              ": grad_input must be the input itself or not share memory with it, got a buffer over part of it");
  for (const at::Tensor* read : {&p.target, &p.class_weight, &p.tensor_params}) {
    TORCH_CHECK(overlap_of(grad_input, *read) == Overlap::None, op,
                ": grad_input must not share memory with the target, the weight or tensor_params");
  }
  const auto acc = accumulation_dtype(input.scalar_type());
  at::Tensor row_values = at::empty({p.rows}, input.options().dtype(acc));
  at::Tensor row_param_grads = empty_row_param_grads<Loss>(p, true);
  const at::Tensor weight_sum = Driver::target_weight_sum(p);
  if (p.rows > 0) {
    Driver::template run<Loss>(p, Loss::make_params(params.data()), weight_sum, at::Tensor(), row_values,
                               grad_input, row_param_grads);
  }
  return reduce_row_values(row_values, weight_sum, p.reduction, input.scalar_type());
}

template <typename Loss, typename Driver>
std::tuple<at::Tensor, at::Tensor> row_loss_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                     const at::Tensor& target,
                                                     const c10::optional<at::Tensor>& weight,
                                                     c10::ArrayRef<double> params,
                                                     const c10::optional<at::Tensor>& tensor_params,
                                                     int64_t ignore_index, int64_t reduction) {
  const RowLossProblem p =
      prepare_row_loss<Loss>(input, target, weight, params, tensor_params, ignore_index, reduction);
  const std::string op = std::string("lossext::") + Loss::kName + "_backward";
  TORCH_CHECK(grad_output.device() == input.device(), op, ": grad_output must be on the input's device");
  if (p.reduction == Reduction::None) {
    TORCH_CHECK(grad_output.dim() == 1 && grad_output.size(0) == p.rows, op,
                ": grad_output must have shape (N,) = (", p.rows, ",) for reduction none, got ",
                grad_output.sizes());
  } else {
    TORCH_CHECK(grad_output.numel() == 1, op, ": grad_output must have one element for a reduced loss, got shape ",
                grad_output.sizes());
  }
  const auto acc = accumulation_dtype(input.scalar_type());
  const at::Tensor upstream = grad_output.to(acc).contiguous().view({-1});
  at::Tensor row_values = at::empty({p.rows}, input.options().dtype(acc));
  at::Tensor grad_input = at::empty({p.rows, p.classes}, input.options());
  at::Tensor row_param_grads = empty_row_param_grads<Loss>(p, true);
  const at::Tensor weight_sum = Driver::target_weight_sum(p);
  if (p.rows > 0) {
    Driver::template run<Loss>(p, Loss::make_params(params.data()), weight_sum, upstream, row_values, grad_input,
                               row_param_grads);
  }
  return {grad_input, row_param_grads};
}

}  // namespace lossext
