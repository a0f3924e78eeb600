// Every activation, as X(name, forward_arguments, backward_arguments): the ops
// <name>_forward<forward_arguments> and <name>_backward<backward_arguments>,
// each argument list written as in its schema. The schemas (ops/schemas.cpp),
// both backends' kernel registrations (cpu/activations.cpp,
// cuda/activations.cu, which register ActivationOps<Driver>::<name>_forward
// and _backward from ops/activation_ops.h) and lossext._C.activation_names()
// (ops/python_module.cpp) expand this list, so a new activation is its header,
// its two functions in ActivationOps and one line here.
//
// <saved> in a backward is the one tensor the autograd formula keeps: the
// output where the derivative is a function of it, computed accurately (relu,
// sigmoid, tanh, softmax; leaky_relu for negative_slope >= 0, saying so with
// saved_is_output; hardtanh where both bounds are values of the dtype, the
// same test on either), else the input (elu and selu among them: from the
// output, their negative slope y + scale alpha cancels, elu.h). PReLU and Swish also
// return the gradient of their parameter (one value, or one per channel of
// dim 1), summed in a fixed order, or an empty tensor when compute_*_grad is
// false.
#pragma once

#include "elu.h"
#include "gelu.h"
#include "prelu.h"
#include "relu_family.h"
#include "sigmoid_family.h"
#include "softmax.h"

#define LOSSEXT_FOR_EACH_ACTIVATION(X)                                                                      \
  X(relu, "(Tensor input) -> Tensor", "(Tensor grad_output, Tensor output) -> Tensor")                      \
  X(leaky_relu, "(Tensor input, float negative_slope) -> Tensor",                                           \
    "(Tensor grad_output, Tensor saved, float negative_slope, bool saved_is_output) -> Tensor")             \
  X(prelu, "(Tensor input, Tensor weight) -> Tensor",                                                       \
    "(Tensor grad_output, Tensor input, Tensor weight, bool compute_weight_grad) "                          \
    "-> (Tensor grad_input, Tensor grad_weight)")                                                           \
  X(elu, "(Tensor input, float alpha) -> Tensor",                                                           \
    "(Tensor grad_output, Tensor input, float alpha) -> Tensor")                                            \
  X(selu, "(Tensor input) -> Tensor", "(Tensor grad_output, Tensor input) -> Tensor")                       \
  X(silu, "(Tensor input) -> Tensor", "(Tensor grad_output, Tensor input) -> Tensor")                       \
  X(swish, "(Tensor input, Tensor beta) -> Tensor",                                                         \
    "(Tensor grad_output, Tensor input, Tensor beta, bool compute_beta_grad) "                              \
    "-> (Tensor grad_input, Tensor grad_beta)")                                                             \
  X(gelu, "(Tensor input, str approximate) -> Tensor",                                                      \
    "(Tensor grad_output, Tensor input, str approximate) -> Tensor")                                        \
  X(sigmoid, "(Tensor input) -> Tensor", "(Tensor grad_output, Tensor output) -> Tensor")                   \
  X(tanh, "(Tensor input) -> Tensor", "(Tensor grad_output, Tensor output) -> Tensor")                      \
  X(hardtanh, "(Tensor input, float min_val, float max_val) -> Tensor",                                     \
    "(Tensor grad_output, Tensor saved, float min_val, float max_val) -> Tensor")                           \
  X(softmax, "(Tensor input, int dim) -> Tensor", "(Tensor grad_output, Tensor output, int dim) -> Tensor")
