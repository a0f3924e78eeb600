// A host simulation of the CUDA driver (csrc/cuda/row_loss_driver.cuh) for a
// machine without a GPU: the kernels' per-row phases (open_row,
// gather_row_partial, finish_row, ...) run on the host for every thread rank
// of a row's group in turn, with the group's all_reduce replayed in the kernels'
// order (the warp's butterfly, then the block's combination of its warps'
// results). The arguments come from the driver's own with_kernel_args, and
// the op layer (row_loss_op.h) is the production one. What this cannot show:
// the device's code generation, __expf, memory ordering and launch limits.
#include <vector>

#include "cuda/row_loss_driver.cuh"
#include "harness.h"

namespace lossext {
namespace testing {
namespace {

// Each rank's result of group.all_reduce on these partials (one per rank).
template <class Partial, class Scales>
std::vector<Partial> simulated_all_reduce(std::vector<Partial> lanes, const Scales& scales) {
  const int size = static_cast<int>(lanes.size());
  // warp_all_reduce: lane i combines its value with lane i ^ mask's, within its warp.
  for (int mask = cuda::kWarpSize / 2; mask > 0; mask /= 2) {
    std::vector<Partial> next(size);
    for (int i = 0; i < size; ++i) next[i] = Partial::combine(lanes[i], lanes[i ^ mask], scales);
    lanes = next;
  }
  if (size == cuda::kWarpSize) return lanes;  // WarpGroup: each lane keeps its own result
  // BlockGroup: every thread combines the warps' lane-0 results in warp order.
  Partial total = lanes[0];
  for (int w = 1; w < size / cuda::kWarpSize; ++w) total = Partial::combine(total, lanes[w * cuda::kWarpSize], scales);
  return std::vector<Partial>(size, total);
}

struct SimulatedCudaDriver {
  static int group_size;

  static at::Tensor target_weight_sum(const RowLossProblem& p) { return cuda::CudaRowLossDriver::target_weight_sum(p); }

  // cuda::run_row's steps, for every rank of the row's group in turn.
  template <class Loss, typename scalar_t, typename acc_t>
  static void run_row(int64_t row, const cuda::RowLossArgs<scalar_t, acc_t>& a, const typename Loss::Params& params) {
    using Partial = RowPartial<Loss, acc_t>;
    const int size = group_size;
    const auto r = cuda::open_row<Loss>(row, a);
    if (r.ignored) {
      for (int rank = 0; rank < size; ++rank) cuda::clear_ignored_row(r, a, rank, size);
      return;
    }
    // Each rank's result of group.all_reduce(gather(rank)).
    const auto all_reduce = [&](auto gather, acc_t scale) {
      std::vector<Partial> partials(size);
      for (int rank = 0; rank < size; ++rank) partials[rank] = gather(rank);
      return simulated_all_reduce(partials, single_logit_scale(scale));
    };
    std::vector<RowStats<acc_t>> stats(size, cuda::context_statistics<Loss>(r, a));
    if constexpr ((Loss::kNeeds & kScaledSoftmax) != 0) {
      const std::vector<Partial> first = all_reduce([&](int rank) {
        return cuda::gather_row_partial<Loss, Gather::kWithoutExpSums>(r, a, params, rank, size, Partial::empty(),
                                                                       single_logit_scale(acc_t(1)));
      }, acc_t(1));
      std::vector<Partial> start(size);
      for (int rank = 0; rank < size; ++rank) {
        start[rank] = cuda::choose_row_scale<Loss>(first[rank], stats[rank], params);
      }
      const std::vector<Partial> second = all_reduce([&](int rank) {
        return cuda::gather_row_partial<Loss, Gather::kExpSums>(r, a, params, rank, size, start[rank],
                                                                single_logit_scale(stats[rank].logit_scale));
      }, stats[0].logit_scale);
      for (int rank = 0; rank < size; ++rank) second[rank].fill_exp_sums(stats[rank]);
    } else {
      const std::vector<Partial> totals = all_reduce([&](int rank) {
        return cuda::gather_row_partial<Loss, Gather::kEverything>(r, a, params, rank, size, Partial::empty(),
                                                                   single_logit_scale(acc_t(1)));
      }, acc_t(1));
      for (int rank = 0; rank < size; ++rank) {
        totals[rank].fill_statistics(stats[rank]);
        totals[rank].fill_exp_sums(stats[rank]);
      }
    }
    for (int rank = 0; rank < size; ++rank) cuda::finish_row<Loss>(r, stats[rank], a, params, rank, size);
  }

  template <class Loss>
  static void run(const RowLossProblem& p, const typename Loss::Params& params, const at::Tensor& target_weight_sum,
                  const at::Tensor& upstream, at::Tensor& row_values, at::Tensor& grad_input,
                  at::Tensor& row_param_grads) {
    const auto simulate = [&](const auto& a) {
      for (int64_t row = 0; row < a.rows; ++row) run_row<Loss>(row, a, params);
    };
    cuda::CudaRowLossDriver::with_kernel_args<Loss>(p, target_weight_sum, upstream, row_values, grad_input,
                                                    row_param_grads, simulate);
  }
};

int SimulatedCudaDriver::group_size = cuda::kWarpSize;

// group_size 0: the threads launch_rows gives a row of the input's length.
void set_group_size(int64_t group_size, const at::Tensor& input) {
  if (group_size == 0) group_size = cuda::row_group_threads(input.size(-1));
  TORCH_CHECK(group_size > 0 && group_size % cuda::kWarpSize == 0 && group_size <= cuda::kMaxBlockThreads,
              "group size must be 32 (a warp) or a multiple of 32 up to ", cuda::kMaxBlockThreads, " (a block)");
  SimulatedCudaDriver::group_size = static_cast<int>(group_size);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> simulated_forward(
    const std::string& loss, int64_t group_size, const at::Tensor& input, const at::Tensor& target,
    const c10::optional<at::Tensor>& weight, const std::vector<double>& params,
    const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index, int64_t reduction, bool compute_grad) {
  set_group_size(group_size, input);
  return with_loss(loss, [&](auto l) {
    return row_loss_forward<decltype(l), SimulatedCudaDriver>(input, target, weight, params, tensor_params,
                                                              ignore_index, reduction, compute_grad);
  });
}

at::Tensor simulated_forward_out(const std::string& loss, int64_t group_size, const at::Tensor& input,
                                 const at::Tensor& target, const c10::optional<at::Tensor>& weight,
                                 const std::vector<double>& params, const c10::optional<at::Tensor>& tensor_params,
                                 int64_t ignore_index, int64_t reduction, at::Tensor& grad_input) {
  set_group_size(group_size, input);
  return with_loss(loss, [&](auto l) {
    return row_loss_forward_out<decltype(l), SimulatedCudaDriver>(input, target, weight, params, tensor_params,
                                                                  ignore_index, reduction, grad_input);
  });
}

std::tuple<at::Tensor, at::Tensor> simulated_backward(
    const std::string& loss, int64_t group_size, const at::Tensor& grad_output, const at::Tensor& input,
    const at::Tensor& target, const c10::optional<at::Tensor>& weight, const std::vector<double>& params,
    const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index, int64_t reduction) {
  set_group_size(group_size, input);
  return with_loss(loss, [&](auto l) {
    return row_loss_backward<decltype(l), SimulatedCudaDriver>(grad_output, input, target, weight, params,
                                                               tensor_params, ignore_index, reduction);
  });
}

}  // namespace testing
}  // namespace lossext
