// The CPU driver of the block ops (row_statistics_op.h): the row-loss
// driver's passes (row_loss_driver.h) run on a block of each row's columns.
// A block's statistics take pass 1 (max, min, element sum, max-other) and one
// exp pass per candidate logit scale over the block in cache; its gradient is
// one pass that recomputes e_j from the logits and the combined statistics.
// Combination and rebasing are the scalar code of losses/row_statistics.h, per row.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "losses/row_statistics.h"
#include "ops/row_statistics_op.h"
#include "cpu/row_loss_driver.h"

namespace lossext {
namespace cpu {

// About 64 KiB of logits per task, as the row-loss driver.
inline int64_t rows_per_task(int64_t columns) { return std::max<int64_t>(1, (int64_t(1) << 14) / columns); }

struct CpuRowStatisticsDriver {
  // The block's columns of row `row` (p: the block's problem, targets int64).
  template <typename Loss, typename scalar_t, typename acc_t>
  static CpuRow<scalar_t, acc_t> block_row(const RowLossProblem& p, int64_t row, int64_t class_offset,
                                           scalar_t* grad) {
    constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
    CpuRow<scalar_t, acc_t> r;
    r.input = p.input.data_ptr<scalar_t>() + row * p.input.stride(0);
    r.grad = grad ? grad + row * p.classes : nullptr;
    r.weight = kDense ? p.target.data_ptr<acc_t>() + row * p.classes
                      : (p.class_weight.defined() ? p.class_weight.data_ptr<acc_t>() : nullptr);
    r.columns = p.classes;
    r.first_class = class_offset;
    const int64_t target = kDense ? 0 : p.target.data_ptr<int64_t>()[row];
    const int64_t column = target - class_offset;
    r.target = column >= 0 && column < p.classes ? column : -1;
    r.logit_softcap = static_cast<acc_t>(p.logit_softcap);
    return r;
  }

  // Every class-index target is a class of the whole row or ignore_index,
  // checked before any kernel runs so it raises IndexError like F.nll_loss.
  static void check_targets(const RowLossProblem& p, int64_t num_classes) {
    if (p.target.dim() != 1) return;  // dense
    const int64_t* target = p.target.data_ptr<int64_t>();
    for (int64_t i = 0; i < p.rows; ++i) {
      const int64_t t = target[i];
      TORCH_CHECK_INDEX(t == p.ignore_index || (t >= 0 && t < num_classes), "Target ", t, " is out of bounds.");
    }
  }

  template <class Loss>
  static void block_statistics(const RowLossProblem& p, const typename Loss::Params& params, int64_t class_offset,
                               int64_t num_classes, at::Tensor& statistics, at::Tensor& max_other_index) {
    check_targets(p, num_classes);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.input.scalar_type(), "lossext_block_statistics", [&] {
      using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
      using Block = BlockStatistics<Loss, acc_t>;
      using Partial = typename Block::Partial;
      constexpr bool kDense = (Loss::kNeeds & kDenseTarget) != 0;
      const auto scales = candidate_logit_scales<Loss, acc_t>(
          p.tensor_params.defined() ? p.tensor_params.data_ptr<acc_t>() : nullptr);
      // The block's sum of class weights, the same for every row (a dense row sums its own).
      const acc_t block_weight_total = p.class_weight.defined() ? p.class_weight.sum().item<acc_t>()
                                                                : static_cast<acc_t>(p.classes);
      acc_t* out = statistics.data_ptr<acc_t>();
      int64_t* out_index = Partial::kOtherIndex ? max_other_index.data_ptr<int64_t>() : nullptr;
      const bool prefetch_next_row = p.classes * static_cast<int64_t>(sizeof(scalar_t)) <= (int64_t(256) << 10);
      at::parallel_for(0, p.rows, rows_per_task(p.classes), [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          Block b = Block::empty();
          const bool ignored = !kDense && p.target.data_ptr<int64_t>()[row] == p.ignore_index;
          if (!ignored) {
            const CpuRow<scalar_t, acc_t> r = block_row<Loss, scalar_t, acc_t>(p, row, class_offset, nullptr);
            const char* next_row = prefetch_next_row && row + 1 < end
                                       ? reinterpret_cast<const char*>(r.input + p.input.stride(0))
                                       : nullptr;
            gather_block<Loss>(r, b.partial, params, scales, next_row);
            if constexpr (!kDense) {
              if (r.target >= 0) {
                b.target_logit = r.logit(r.target);
                b.target_weight = r.weight_at(r.target);
              }
              if constexpr (Partial::kSmoothing) b.partial.weight_total = block_weight_total;
            }
          }
          b.pack(out + row * Block::kFields, out_index ? out_index + row : nullptr);
        }
      });
    });
  }

  // A block's partial statistics: pass 1, then the exp sums of each scale
  // whose reference the block holds (row_partial.h: a block of -inf logits
  // has nothing at the max; for a negative scale, nothing finite below +inf
  // has nothing at the min), the weighted sums with the first.
  template <class Loss, typename Partial, typename scalar_t, typename acc_t, typename Scales>
  static void gather_block(const CpuRow<scalar_t, acc_t>& r, Partial& partial, const typename Loss::Params& params,
                           const Scales& scales, const char* next_row) {
    gather_first_pass<Loss>(r, partial, params, /*with_min*/ true);
    if constexpr (Partial::kSoftmaxSums) {
      if (partial.max_logit == -infinity<acc_t>()) {
        // Every logit is -inf: the exp sums stay empty, and the weighted sum
        // holds each w_j o_j (the -inf, or NaN for w_j = 0, that any rebasing keeps).
        if constexpr (Partial::kSmoothing) {
          for (int64_t j = 0; j < r.columns; ++j) {
            partial.weighted_logit_sum += r.weight_at(j) * r.logit(j);
            if constexpr (Partial::kDense) partial.weight_total += r.weight_at(j);
          }
        }
        return;
      }
      acc_t* const no_exp_row = nullptr;
      for (int k = 0; k < Partial::kNumScales; ++k) {
        const acc_t s = scales.value[k];
        if (k == 0) {
          gather_exp_sums<Loss, /*kStoreExp*/ false, /*kWeightedSums*/ true>(r, partial, k, s, partial.reference(s),
                                                                              no_exp_row, next_row);
        } else if (!partial.empty_at(s)) {
          gather_exp_sums<Loss, false, false>(r, partial, k, s, partial.reference(s), no_exp_row, nullptr);
        }
        if (partial.empty_at(s)) partial.sum_exp[k] = partial.sum_exp_squared[k] = partial.exp_weighted_sum[k] = 0;
      }
    }
  }

  template <class Loss>
  static void combine_statistics(const std::vector<at::Tensor>& statistics,
                                 const std::vector<at::Tensor>& max_other_index, const at::Tensor& tensor_params,
                                 at::Tensor& combined, at::Tensor& combined_index) {
    AT_DISPATCH_FLOATING_TYPES(combined.scalar_type(), "lossext_combine_statistics", [&] {
      using acc_t = scalar_t;
      using Block = BlockStatistics<Loss, acc_t>;
      constexpr bool kOther = Block::Partial::kOtherIndex;
      const auto scales = candidate_logit_scales<Loss, acc_t>(
          tensor_params.defined() ? tensor_params.data_ptr<acc_t>() : nullptr);
      std::vector<const acc_t*> blocks;
      std::vector<const int64_t*> indices;
      for (size_t b = 0; b < statistics.size(); ++b) {
        blocks.push_back(statistics[b].data_ptr<acc_t>());
        indices.push_back(kOther ? max_other_index[b].data_ptr<int64_t>() : nullptr);
      }
      acc_t* out = combined.data_ptr<acc_t>();
      int64_t* out_index = kOther ? combined_index.data_ptr<int64_t>() : nullptr;
      const int64_t rows = combined.size(0);
      const auto block_at = [&](size_t b, int64_t row) {
        return Block::unpack(blocks[b] + row * Block::kFields, kOther ? indices[b] + row : nullptr);
      };
      at::parallel_for(0, rows, 1024, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          Block total = block_at(0, row);
          for (size_t b = 1; b < blocks.size(); ++b) total = Block::combine(total, block_at(b, row), scales);
          total.pack(out + row * Block::kFields, kOther ? out_index + row : nullptr);
        }
      });
    });
  }

  template <class Loss>
  static void rebase_statistics(const at::Tensor& statistics, const at::Tensor& max_statistics,
                                const at::Tensor& tensor_params, at::Tensor& rebased) {
    AT_DISPATCH_FLOATING_TYPES(statistics.scalar_type(), "lossext_rebase_statistics", [&] {
      using acc_t = scalar_t;
      using Block = BlockStatistics<Loss, acc_t>;
      const auto scales = candidate_logit_scales<Loss, acc_t>(
          tensor_params.defined() ? tensor_params.data_ptr<acc_t>() : nullptr);
      const acc_t* in = statistics.data_ptr<acc_t>();
      const acc_t* max_part = max_statistics.data_ptr<acc_t>();
      acc_t* out = rebased.data_ptr<acc_t>();
      int64_t unused_index = -1;
      at::parallel_for(0, statistics.size(0), 1024, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          // The max-other index travels apart (row_statistics.h) and is left out here.
          Block b = Block::unpack(in + row * Block::kFields, &unused_index);
          b.rebase(max_part + row * Block::kMaxFields, scales);
          int64_t index = -1;
          b.pack(out + row * Block::kFields, &index);
        }
      });
    });
  }

  template <class Loss>
  static void block_loss_and_gradient(const RowLossProblem& p, const typename Loss::Params& params,
                                      int64_t class_offset, int64_t num_classes, const at::Tensor& statistics,
                                      const at::Tensor& max_other_index, const at::Tensor& target_weight_sum,
                                      const at::Tensor& upstream, at::Tensor& row_values, at::Tensor& grad_input,
                                      at::Tensor& row_param_grads) {
    check_targets(p, num_classes);
    constexpr unsigned kNeeds = Loss::kNeeds;
    constexpr bool kDense = (kNeeds & kDenseTarget) != 0;
    constexpr bool kSoftmaxLoss = (kNeeds & kSoftmax) != 0;
    constexpr bool kScaled = (kNeeds & kScaledSoftmax) != 0;
    constexpr int kTensorParams = TensorParamCount<Loss>::value;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.input.scalar_type(), "lossext_block_gradient", [&] {
      using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
      using Block = BlockStatistics<Loss, acc_t>;
      using L = Lane<acc_t>;
      using V = typename L::type;
      constexpr int64_t W = L::kWidth;
      ReductionInfo<acc_t> reduction;
      reduction.reduction = p.reduction;
      reduction.target_weight_sum = target_weight_sum.item<acc_t>();
      reduction.total_rows = p.rows;
      const acc_t* stats = statistics.data_ptr<acc_t>();
      const int64_t* index = Block::Partial::kOtherIndex ? max_other_index.data_ptr<int64_t>() : nullptr;
      const acc_t* tensor_params = p.tensor_params.defined() ? p.tensor_params.data_ptr<acc_t>() : nullptr;
      const acc_t* up = upstream.defined() ? upstream.data_ptr<acc_t>() : nullptr;
      const int64_t upstream_stride = upstream.defined() && upstream.numel() > 1 ? 1 : 0;
      acc_t* values = row_values.data_ptr<acc_t>();
      scalar_t* grad = grad_input.numel() > 0 ? grad_input.data_ptr<scalar_t>() : nullptr;
      acc_t* param_grads = row_param_grads.numel() > 0 ? row_param_grads.data_ptr<acc_t>() : nullptr;
      const bool stream = grad != nullptr && use_streaming_stores(grad, static_cast<int64_t>(grad_input.nbytes()));
      const V lowest(std::numeric_limits<acc_t>::lowest());
      at::parallel_for(0, p.rows, rows_per_task(p.classes), [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          const CpuRow<scalar_t, acc_t> r = block_row<Loss, scalar_t, acc_t>(p, row, class_offset, grad);
          const int64_t target = kDense ? 0 : p.target.data_ptr<int64_t>()[row];
          if (!kDense && target == p.ignore_index) {
            // Ignored rows contribute nothing and get a zero gradient (F.nll_loss).
            values[row] = acc_t(0);
            if (r.grad) std::fill(r.grad, r.grad + r.columns, scalar_t(0));
            continue;
          }
          const Block b = Block::unpack(stats + row * Block::kFields, index ? index + row : nullptr);
          const RowStats<acc_t> s = b.finish(num_classes, tensor_params, params);
          values[row] = Loss::value(s, params, reduction);
          if (!r.grad) continue;
          const acc_t upstream_value = up ? up[row * upstream_stride] : acc_t(1);
          const auto g = row_gradient<Loss>(s, params, reduction, upstream_value,
                                            param_grads ? param_grads + row * kTensorParams : nullptr);
          // z_j: e_j = exp(s (o_j - m)) from the combined statistics (-inf
          // logits of a scaled softmax excluded where s <= 0, as
          // scaled_exponential does), plus the exp_shift of a loss that folds
          // its gradient scale into the exponent (row_loss.h) with the general
          // exp, or the logit.
          const V reference(s.max_logit), scale(s.logit_scale), shift(g.exp_shift);
          const bool masked = !(s.logit_scale > acc_t(0));
          const auto z_of = [&](V logits) {
            if constexpr (kScaled) {
              const V e = exponential_nonpositive(scale * (logits - reference));
              return masked ? where(logits < lowest, V(acc_t(0)), e) : e;
            } else if constexpr (kSoftmaxLoss) {
              return g.exp_shift != acc_t(0) ? exponential(logits - reference + shift)
                                             : exponential_nonpositive(logits - reference);
            } else {
              return logits;
            }
          };
          const auto z_vector = [&](int64_t j, int64_t count) {
            return z_of(count == W ? r.logits(j) : r.logits(j, count, kSoftmaxLoss ? -infinity<acc_t>() : 0));
          };
          const auto z_at = [&](int64_t j) {
            const acc_t o = r.logit(j);
            if constexpr (kScaled) return scaled_exponential(o, s.logit_scale, s.max_logit);
            if constexpr (kSoftmaxLoss) return exponential(o - s.max_logit + g.exp_shift);
            return o;
          };
          write_gradient<Loss>(r, g, target, stream, z_vector, z_at);
        }
        if (stream) streaming_fence();  // before at::parallel_for reports this chunk done
      });
    });
  }
};

}  // namespace cpu
}  // namespace lossext
