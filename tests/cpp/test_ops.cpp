// The lossext ops from C++, through the dispatcher, as a libtorch user calls
// them: values and gradients of cross-entropy against libtorch's own.
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>
#include <string>

namespace {

int failures = 0;

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  // float32 inputs: fp32 accumulation and a vectorised exp, ~1e-6 relative.
  if (!torch::allclose(actual, expected, /*rtol=*/1e-5, /*atol=*/1e-6)) {
    ++failures;
    std::cerr << "FAIL " << what << ": max |difference| " << (actual - expected).abs().max().item<double>() << "\n";
  } else {
    std::cout << "ok   " << what << "\n";
  }
}

}  // namespace

int main() {
  torch::manual_seed(0);
  auto forward = c10::Dispatcher::singleton()
                     .findSchemaOrThrow("lossext::cross_entropy_forward", "")
                     .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                         const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                         c10::ArrayRef<double>, const c10::optional<at::Tensor>&, int64_t, int64_t, bool)>();
  const auto input = torch::randn({64, 100});
  auto target = torch::randint(0, 100, {64}, torch::kLong);
  target.index_put_({5}, -100);
  const auto weight = torch::rand({100}) + 0.1;
  const double smoothing = 0.1;

  for (int64_t reduction : {0, 1, 2}) {
    auto [loss, grad, param_grads] = forward.call(input, target, weight, {smoothing, 0.0, 0.0}, c10::nullopt, -100, reduction, true);
    auto x = input.clone().requires_grad_(true);
    namespace F = torch::nn::functional;
    auto options = F::CrossEntropyFuncOptions().weight(weight).ignore_index(-100).label_smoothing(smoothing);
    if (reduction == 0) options.reduction(torch::kNone);
    if (reduction == 1) options.reduction(torch::kMean);
    if (reduction == 2) options.reduction(torch::kSum);
    auto expected = F::cross_entropy(x, target, options);
    expected.backward(torch::ones_like(expected));
    const std::string name = "cross_entropy reduction=" + std::to_string(reduction);
    expect_close(loss, expected.detach(), name + " value");
    expect_close(grad, x.grad(), name + " gradient");
  }

  // A bad argument is an exception naming it, not a crash.
  try {
    forward.call(input, target.slice(0, 0, 10), c10::nullopt, {0.0, 0.0, 0.0}, c10::nullopt, -100, 1, false);
    ++failures;
    std::cerr << "FAIL no error for a target of the wrong length\n";
  } catch (const c10::Error& error) {
    const bool names_target = std::string(error.what()).find("target must have shape") != std::string::npos;
    if (!names_target) ++failures;
    std::cout << (names_target ? "ok   " : "FAIL ") << "wrong target shape raises c10::Error naming target\n";
  }
  std::cout << (failures == 0 ? "all passed" : "FAILED") << "\n";
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
