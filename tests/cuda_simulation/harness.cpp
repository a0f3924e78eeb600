// The Python module of the CUDA-driver host simulation: the simulated CUDA
// driver (simulated_driver.cu) and the CPU driver, for the shipped losses and
// the statistics probes (probe_losses.h), through the same op layer.
#include <torch/extension.h>

#include "cpu/row_loss_driver.h"
#include "harness.h"

namespace lossext {
namespace testing {
namespace {

using Cpu = cpu::CpuRowLossDriver;

std::tuple<at::Tensor, at::Tensor, at::Tensor> cpu_forward(
    const std::string& loss, const at::Tensor& input, const at::Tensor& target,
    const c10::optional<at::Tensor>& weight, const std::vector<double>& params,
    const c10::optional<at::Tensor>& tensor_params, int64_t ignore_index, int64_t reduction, bool compute_grad) {
  return with_loss(loss, [&](auto l) {
    return row_loss_forward<decltype(l), Cpu>(input, target, weight, params, tensor_params, ignore_index, reduction,
                                              compute_grad);
  });
}

std::tuple<at::Tensor, at::Tensor> cpu_backward(const std::string& loss, const at::Tensor& grad_output,
                                                const at::Tensor& input, const at::Tensor& target,
                                                const c10::optional<at::Tensor>& weight,
                                                const std::vector<double>& params,
                                                const c10::optional<at::Tensor>& tensor_params,
                                                int64_t ignore_index, int64_t reduction) {
  return with_loss(loss, [&](auto l) {
    return row_loss_backward<decltype(l), Cpu>(grad_output, input, target, weight, params, tensor_params,
                                               ignore_index, reduction);
  });
}

}  // namespace
}  // namespace testing
}  // namespace lossext

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace lossext::testing;
  m.def("simulated_forward", &simulated_forward);
  m.def("simulated_forward_out", &simulated_forward_out);
  m.def("simulated_backward", &simulated_backward);
  m.def("cpu_forward", &cpu_forward);
  m.def("cpu_backward", &cpu_backward);
}
