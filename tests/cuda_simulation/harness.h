// The entry points of the CUDA-driver host simulation (simulated_driver.cu)
// and of the CPU driver for the same losses (harness.cpp), by loss name:
// every shipped loss's op name (LOSSEXT_FOR_EACH_ROW_LOSS), index_probe, dense_probe and scaled_probe.
#pragma once

#include <ATen/ATen.h>

#include "losses/all_losses.h"
#include "probe_losses.h"

#include <string>
#include <tuple>
#include <vector>

namespace lossext {
namespace testing {

// Calls f(Loss{}) for the loss called `name`.
template <class F>
auto with_loss(const std::string& name, F&& f) {
#define LOSSEXT_SIMULATED_LOSS(op_name, Loss) \
  if (name == #op_name) return f(Loss{});
  LOSSEXT_FOR_EACH_ROW_LOSS(LOSSEXT_SIMULATED_LOSS)
#undef LOSSEXT_SIMULATED_LOSS
  if (name == "index_probe") return f(IndexStatisticsProbe{});
  if (name == "dense_probe") return f(DenseStatisticsProbe{});
  TORCH_CHECK(name == "scaled_probe", "unknown loss ", name);
  return f(ScaledStatisticsProbe{});
}

// The three ops of a row loss (row_loss_op.h) run by the CUDA driver's
// per-row code on the host, with `group_size` threads per row (32: the
// warp-per-row kernel; 128, 256, 512: the block-per-row kernel; 0: as the
// launcher maps a row of the input's length, cuda::row_group_threads).
std::tuple<at::Tensor, at::Tensor, at::Tensor> simulated_forward(
    const std::string& loss, int64_t group_size, const at::Tensor& input, const at::Tensor& target,
    const c10::optional<at::Tensor>& weight, const std::vector<double>& params,
    const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index, int64_t reduction, bool compute_grad);
at::Tensor simulated_forward_out(const std::string& loss, int64_t group_size, const at::Tensor& input,
                                 const at::Tensor& target, const c10::optional<at::Tensor>& weight,
                                 const std::vector<double>& params, const c10::optional<at::Tensor>& tensor_params,
                                 int64_t ignore_index, int64_t reduction, at::Tensor& grad_input);
std::tuple<at::Tensor, at::Tensor> simulated_backward(
    const std::string& loss, int64_t group_size, const at::Tensor& grad_output, const at::Tensor& input,
    const at::Tensor& target, const c10::optional<at::Tensor>& weight, const std::vector<double>& params,
    const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index, int64_t reduction);

}  // namespace testing
}  // namespace lossext
