// The device-independent half of the block ops of every row loss (schemas in
// ops/schemas.cpp): a row's classes split into blocks of
// columns, each block's statistics gathered on its own, combined in any order,
// and the loss and gradient of each block computed from the combination. The
// packed statistics are losses/row_statistics.h's (BlockStatistics). A backend
// supplies a Driver with
//   template <class Loss> static void block_statistics(const RowLossProblem&, const typename Loss::Params&,
//       int64_t class_offset, int64_t num_classes, at::Tensor& statistics, at::Tensor& max_other_index)
//   template <class Loss> static void combine_statistics(const std::vector<at::Tensor>& statistics,
//       const std::vector<at::Tensor>& max_other_index, const at::Tensor& tensor_params,
//       at::Tensor& combined, at::Tensor& combined_max_other_index)
//   template <class Loss> static void rebase_statistics(const at::Tensor& statistics,
//       const at::Tensor& max_statistics, const at::Tensor& tensor_params, at::Tensor& rebased)
//   template <class Loss> static void block_loss_and_gradient(const RowLossProblem&, const typename Loss::Params&,
//       int64_t class_offset, int64_t num_classes, const at::Tensor& statistics,
//       const at::Tensor& max_other_index, const at::Tensor& target_weight_sum, const at::Tensor& upstream,
//       at::Tensor& row_values, at::Tensor& grad_input, at::Tensor& row_param_grads)
// with the tensors checked, contiguous, in the accumulation dtype and on the
// input's device (class-index targets as int64), as these functions leave them.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/ArrayRef.h>

#include <string>
#include <tuple>
#include <vector>

#include "losses/row_statistics.h"
#include "ops/row_loss_op.h"

namespace lossext {

template <typename Loss>
std::string block_op_name(const char* op) {
  return std::string("lossext::") + Loss::kName + op;
}

// (number of MAX-combined fields, every field's name in packed order,
// whether a max-other index tensor comes with them): the layout of the
// statistics tensors, for callers that exchange their parts.
template <typename Loss>
std::tuple<int64_t, std::vector<std::string>, bool> row_statistics_layout() {
  using Block = BlockStatistics<Loss, double>;
  std::vector<std::string> names;
  if constexpr (Block::Partial::kTracksMax) names.emplace_back("max_logit");
  if constexpr (Block::Partial::kScaled) names.emplace_back("negated_min_logit");
  if constexpr (Block::Partial::kOther) names.emplace_back("max_other_logit");
  const Block block = Block::empty();
  Block::for_each_sum_field(block, [&](const char* name, int scale, const double&) {
    names.emplace_back(scale < 0 ? std::string(name) : std::string(name) + "_" + std::to_string(scale));
  });
  return {Block::kMaxFields, names, Block::Partial::kOtherIndex};
}

// The checked problem of a block: input (N, width) holds classes
// [class_offset, class_offset + width) of rows with num_classes classes,
// weight (width,) their class weights, a dense target (N, width) their
// coefficients; class-index targets are global and become int64.
template <typename Loss>
RowLossProblem prepare_row_block(const std::string& op, const at::Tensor& input, const at::Tensor& target,
                                 const c10::optional<at::Tensor>& weight, c10::ArrayRef<double> params,
                                 const c10::optional<at::Tensor>& tensor_params, int64_t class_offset,
                                 int64_t num_classes, int64_t ignore_index) {
  RowLossProblem p = prepare_row_loss<Loss>(input, target, weight, params, tensor_params, ignore_index,
                                            static_cast<int64_t>(Reduction::None), num_classes);
  TORCH_CHECK(class_offset >= 0 && class_offset + p.classes <= num_classes, op,
              ": the block's classes [class_offset, class_offset + input.size(1)) = [", class_offset, ", ",
              class_offset + p.classes, ") must lie in [0, num_classes) = [0, ", num_classes, ")");
  if constexpr ((Loss::kNeeds & kDenseTarget) == 0) p.target = p.target.to(at::kLong);
  return p;
}

template <typename Loss, typename Driver>
std::tuple<at::Tensor, at::Tensor> row_block_statistics(const at::Tensor& input, const at::Tensor& target,
                                                        const c10::optional<at::Tensor>& weight,
                                                        c10::ArrayRef<double> params,
                                                        const c10::optional<at::Tensor>& tensor_params,
                                                        int64_t class_offset, int64_t num_classes,
                                                        int64_t ignore_index) {
  using Block = BlockStatistics<Loss, double>;
  const std::string op = block_op_name<Loss>("_block_statistics");
  const RowLossProblem p = prepare_row_block<Loss>(op, input, target, weight, params, tensor_params, class_offset,
                                                   num_classes, ignore_index);
  const auto acc = accumulation_dtype(input.scalar_type());
  at::Tensor statistics = at::empty({p.rows, Block::kFields}, input.options().dtype(acc));
  at::Tensor max_other_index =
      at::empty({Block::Partial::kOtherIndex ? p.rows : 0}, input.options().dtype(at::kLong));
  if (p.rows > 0) {
    Driver::template block_statistics<Loss>(p, Loss::make_params(params.data()), class_offset, num_classes,
                                            statistics, max_other_index);
  }
  return {statistics, max_other_index};
}

// Checks a statistics tensor against `like` (the first block's, or the shape
// the op expects); returns it contiguous.
template <typename Loss>
at::Tensor checked_statistics(const std::string& op, const at::Tensor& statistics, const at::Tensor& like) {
  using Block = BlockStatistics<Loss, double>;
  TORCH_CHECK(statistics.dim() == 2 && statistics.size(1) == Block::kFields, op,
              ": statistics must have shape (N, ", Block::kFields, "), got ", statistics.sizes());
  TORCH_CHECK(statistics.sizes() == like.sizes() && statistics.scalar_type() == like.scalar_type() &&
                  statistics.device() == like.device(),
              op, ": statistics must have shape ", like.sizes(), ", dtype ", like.scalar_type(), " and device ",
              like.device(), ", got ", statistics.sizes(), ", ", statistics.scalar_type(), ", ", statistics.device());
  return statistics.contiguous();
}

// Checks the max-other indices of `statistics` (as <loss>_block_statistics
// returns them: (N,) for kMaxOtherIndex losses, else (0,)); returns them contiguous.
template <typename Loss>
at::Tensor checked_max_other_index(const std::string& op, const at::Tensor& max_other_index,
                                   const at::Tensor& statistics) {
  const int64_t rows = BlockStatistics<Loss, double>::Partial::kOtherIndex ? statistics.size(0) : 0;
  TORCH_CHECK(max_other_index.dim() == 1 && max_other_index.size(0) == rows &&
                  max_other_index.scalar_type() == at::kLong && max_other_index.device() == statistics.device(),
              op, ": max_other_index must be an int64 tensor of shape (", rows, ",) on ", statistics.device(),
              ", got ", max_other_index.scalar_type(), " of shape ", max_other_index.sizes(), " on ",
              max_other_index.device());
  return max_other_index.contiguous();
}

// The loss's learnable scalars in the statistics' dtype (the candidate logit
// scales of a scaled softmax come from them), or undefined.
template <typename Loss>
at::Tensor checked_tensor_params(const std::string& op, const c10::optional<at::Tensor>& tensor_params,
                                 const at::Tensor& like) {
  constexpr int kTensorParams = TensorParamCount<Loss>::value;
  const bool given = tensor_params.has_value() && tensor_params->defined();
  TORCH_CHECK(given == (kTensorParams > 0), op,
              kTensorParams > 0 ? ": tensor_params must hold the loss's learnable scalars"
                                : ": this loss takes no tensor_params");
  if (!given) return at::Tensor();
  TORCH_CHECK(tensor_params->dim() == 1 && tensor_params->size(0) == kTensorParams &&
                  tensor_params->device() == like.device(),
              op, ": tensor_params must have shape (", kTensorParams, ",) on ", like.device(), ", got ",
              tensor_params->sizes(), " on ", tensor_params->device());
  return tensor_params->to(like.scalar_type()).contiguous();
}

template <typename Loss, typename Driver>
std::tuple<at::Tensor, at::Tensor> row_combine_statistics(const std::vector<at::Tensor>& statistics,
                                                          const std::vector<at::Tensor>& max_other_index,
                                                          const c10::optional<at::Tensor>& tensor_params) {
  const std::string op = block_op_name<Loss>("_combine_statistics");
  TORCH_CHECK(!statistics.empty(), op, ": statistics must hold at least one block's statistics");
  TORCH_CHECK(max_other_index.size() == statistics.size(), op, ": max_other_index must hold one tensor per block (",
              statistics.size(), "), got ", max_other_index.size());
  TORCH_CHECK(statistics[0].scalar_type() == at::kFloat || statistics[0].scalar_type() == at::kDouble, op,
              ": statistics must be float32 or float64 (the accumulation dtype), got ", statistics[0].scalar_type());
  std::vector<at::Tensor> blocks, indices;
  for (size_t b = 0; b < statistics.size(); ++b) {
    blocks.push_back(checked_statistics<Loss>(op, statistics[b], statistics[0]));
    indices.push_back(checked_max_other_index<Loss>(op, max_other_index[b], statistics[0]));
  }
  const at::Tensor params = checked_tensor_params<Loss>(op, tensor_params, statistics[0]);
  at::Tensor combined = at::empty_like(blocks[0]);
  at::Tensor combined_index = at::empty_like(indices[0]);
  if (combined.size(0) > 0) {
    Driver::template combine_statistics<Loss>(blocks, indices, params, combined, combined_index);
  }
  return {combined, combined_index};
}

template <typename Loss, typename Driver>
at::Tensor row_rebase_statistics(const at::Tensor& statistics, const at::Tensor& max_statistics,
                                 const c10::optional<at::Tensor>& tensor_params) {
  using Block = BlockStatistics<Loss, double>;
  const std::string op = block_op_name<Loss>("_rebase_statistics");
  TORCH_CHECK(statistics.scalar_type() == at::kFloat || statistics.scalar_type() == at::kDouble, op,
              ": statistics must be float32 or float64 (the accumulation dtype), got ", statistics.scalar_type());
  const at::Tensor block = checked_statistics<Loss>(op, statistics, statistics);
  TORCH_CHECK(max_statistics.dim() == 2 && max_statistics.size(0) == statistics.size(0) &&
                  max_statistics.size(1) == Block::kMaxFields && max_statistics.scalar_type() == block.scalar_type() &&
                  max_statistics.device() == block.device(),
              op, ": max_statistics must be the combined MAX part, of shape (", statistics.size(0), ", ",
              Block::kMaxFields, ") with the statistics' dtype and device, got ", max_statistics.sizes(), " ",
              max_statistics.scalar_type(), " on ", max_statistics.device());
  const at::Tensor params = checked_tensor_params<Loss>(op, tensor_params, block);
  at::Tensor rebased = at::empty_like(block);
  if (rebased.size(0) > 0) {
    Driver::template rebase_statistics<Loss>(block, max_statistics.contiguous(), params, rebased);
  }
  return rebased;
}

template <typename Loss, typename Driver>
std::tuple<at::Tensor, at::Tensor, at::Tensor> row_block_loss_and_gradient(
    const at::Tensor& input, const at::Tensor& target, const c10::optional<at::Tensor>& weight,
    c10::ArrayRef<double> params, const c10::optional<at::Tensor>& tensor_params, const at::Tensor& statistics,
    const at::Tensor& max_other_index, int64_t class_offset, int64_t num_classes, int64_t ignore_index,
    int64_t reduction, const c10::optional<at::Tensor>& target_weight_sum, const c10::optional<at::Tensor>& grad_output,
    bool compute_grad) {
  using Block = BlockStatistics<Loss, double>;
  const std::string op = block_op_name<Loss>("_block_loss_and_gradient");
  RowLossProblem p = prepare_row_block<Loss>(op, input, target, weight, params, tensor_params, class_offset,
                                             num_classes, ignore_index);
  p.reduction = checked_reduction(reduction);
  const auto acc = accumulation_dtype(input.scalar_type());
  const at::Tensor stats_like = at::empty({p.rows, Block::kFields}, input.options().dtype(acc));
  const at::Tensor stats = checked_statistics<Loss>(op, statistics, stats_like);
  const at::Tensor index = checked_max_other_index<Loss>(op, max_other_index, stats);

  // The reduction's denominator: given, or the sum of w_t over the rows that
  // are not ignored, from the statistics (w_t is in the target's block), in
  // double and without a host sync; the row count for dense losses.
  at::Tensor weight_sum;
  if (target_weight_sum.has_value() && target_weight_sum->defined()) {
    TORCH_CHECK(target_weight_sum->numel() == 1 && target_weight_sum->device() == input.device(), op,
                ": target_weight_sum must be one number on the input's device, got shape ",
                target_weight_sum->sizes(), " on ", target_weight_sum->device());
    weight_sum = target_weight_sum->to(acc).reshape({});
  } else if constexpr (Block::kIndexTarget) {
    const at::Tensor target_weight = stats.select(1, Block::kFields - 1);
    weight_sum = at::where(p.target != ignore_index, target_weight, 0).sum(at::kDouble).to(acc);
  } else {
    weight_sum = at::full({}, static_cast<double>(p.rows), input.options().dtype(acc));
  }

  at::Tensor upstream;
  if (grad_output.has_value() && grad_output->defined()) {
    TORCH_CHECK(grad_output->device() == input.device(), op, ": grad_output must be on the input's device");
    if (p.reduction == Reduction::None) {
      TORCH_CHECK(grad_output->dim() == 1 && grad_output->size(0) == p.rows, op,
                  ": grad_output must have shape (N,) = (", p.rows, ",) for reduction none, got ",
                  grad_output->sizes());
    } else {
      TORCH_CHECK(grad_output->numel() == 1, op, ": grad_output must have one element for a reduced loss, got shape ",
                  grad_output->sizes());
    }
    upstream = grad_output->to(acc).contiguous().view({-1});
  }

  at::Tensor row_values = at::empty({p.rows}, input.options().dtype(acc));
  at::Tensor grad_input = compute_grad ? at::empty({p.rows, p.classes}, input.options())
                                       : at::empty({0}, input.options());
  at::Tensor row_param_grads = empty_row_param_grads<Loss>(p, compute_grad);
  if (p.rows > 0) {
    Driver::template block_loss_and_gradient<Loss>(p, Loss::make_params(params.data()), class_offset, num_classes,
                                                   stats, index, weight_sum, upstream, row_values, grad_input,
                                                   row_param_grads);
  }
  return {reduce_row_values(row_values, weight_sum, p.reduction, input.scalar_type()), grad_input, row_param_grads};
}

}  // namespace lossext
