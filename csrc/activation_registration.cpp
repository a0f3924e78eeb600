// The activations' part of lossext's schema list. csrc/registration.cpp holds
// the TORCH_LIBRARY block with the row losses; the activations extend the same
// namespace from this fragment so the two lists can grow independently.
// Kernels: cpu/activations.cpp and cuda/activations.cu (both through
// activation_ops.h); fake kernels and autograd formulas: lossext/activations.py.
//
// Every activation <name> has
//   <name>_forward(input, <params>) -> output
//   <name>_backward(grad_output, <saved>, <params>) -> grad_input
// where <saved> is the one tensor its autograd formula keeps: the output where
// the derivative is a function of it, computed accurately (relu, sigmoid, tanh,
// softmax; leaky_relu for negative_slope >= 0, saying so with saved_is_output;
// hardtanh where both bounds are values of the dtype, the same test on either),
// else the input (elu and selu among them: from the output, their negative
// slope y + scale alpha cancels, elu.h). PReLU and Swish also return the gradient
// of their parameter (one value, or one per channel of dim 1), summed in a
// fixed order, or an empty tensor when compute_*_grad is false.
#include <torch/library.h>

namespace lossext {
namespace {

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("relu_forward(Tensor input) -> Tensor");
  m.def("relu_backward(Tensor grad_output, Tensor output) -> Tensor");
  m.def("leaky_relu_forward(Tensor input, float negative_slope) -> Tensor");
  m.def("leaky_relu_backward(Tensor grad_output, Tensor saved, float negative_slope, bool saved_is_output) -> Tensor");
  m.def("prelu_forward(Tensor input, Tensor weight) -> Tensor");
  m.def("prelu_backward(Tensor grad_output, Tensor input, Tensor weight, bool compute_weight_grad) "
        "-> (Tensor grad_input, Tensor grad_weight)");
  m.def("elu_forward(Tensor input, float alpha) -> Tensor");
  m.def("elu_backward(Tensor grad_output, Tensor input, float alpha) -> Tensor");
  m.def("selu_forward(Tensor input) -> Tensor");
  m.def("selu_backward(Tensor grad_output, Tensor input) -> Tensor");
  m.def("silu_forward(Tensor input) -> Tensor");
  m.def("silu_backward(Tensor grad_output, Tensor input) -> Tensor");
  m.def("swish_forward(Tensor input, Tensor beta) -> Tensor");
  m.def("swish_backward(Tensor grad_output, Tensor input, Tensor beta, bool compute_beta_grad) "
        "-> (Tensor grad_input, Tensor grad_beta)");
  m.def("gelu_forward(Tensor input, str approximate) -> Tensor");
  m.def("gelu_backward(Tensor grad_output, Tensor input, str approximate) -> Tensor");
  m.def("sigmoid_forward(Tensor input) -> Tensor");
  m.def("sigmoid_backward(Tensor grad_output, Tensor output) -> Tensor");
  m.def("tanh_forward(Tensor input) -> Tensor");
  m.def("tanh_backward(Tensor grad_output, Tensor output) -> Tensor");
  m.def("hardtanh_forward(Tensor input, float min_val, float max_val) -> Tensor");
  m.def("hardtanh_backward(Tensor grad_output, Tensor saved, float min_val, float max_val) -> Tensor");
  m.def("softmax_forward(Tensor input, int dim) -> Tensor");
  m.def("softmax_backward(Tensor grad_output, Tensor output, int dim) -> Tensor");
}

}  // namespace
}  // namespace lossext
