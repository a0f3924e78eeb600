// The device-independent half of every activation op: argument checks,
// layouts, output allocation. A backend supplies a Driver with
//   template <class Act, class MakeParams> static void map_forward(x, y, make_params)
//   template <class Act, class MakeParams> static void map_backward(g, saved, grad_input, make_params)
//   template <class Act> static void channel_forward(x, parameter, layout, y)
//   template <class Act> static void channel_backward(g, x, parameter, layout, grad_input, grad_parameter)
//   static void softmax_forward(x, layout, y)
//   static void softmax_backward(g, y, layout, grad_input)
// (see csrc/cpu/activation_driver.h), and registers ActivationOps<Driver>'s
// functions as the ops' kernels with register_activation_kernels<Driver>
// (cpu/activations.cpp, cuda/activations.cu).
// Schemas: csrc/ops/schemas.cpp, from activations/all_activations.h.
//
// Layouts. Elementwise ops run over any non-overlapping dense tensor in memory
// order (so channels_last and transposed tensors cost no copy) and return the
// layout torch.empty_like gives; other strided inputs are first copied into
// that layout. Channel ops (PReLU, Swish) and softmax work on a contiguous
// (outer, size, inner) view and copy a non-contiguous input first.
#pragma once

#include <ATen/ATen.h>
#include <ATen/WrapDimUtils.h>
#include <torch/library.h>

#include <cmath>
#include <string>
#include <tuple>

#include "activations/all_activations.h"
#include "common/accumulation.h"

namespace lossext {

// A contiguous tensor seen as (outer, size, inner) around one dimension: the
// channel dimension of PReLU and Swish (size 1 for a shared parameter), the
// softmax dimension.
struct DimLayout {
  int64_t outer = 1;
  int64_t size = 1;
  int64_t inner = 1;
};

inline void check_floating(const std::string& op, const char* name, const at::Tensor& t) {
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16, op,
              ": ", name, " must be float32, float64, float16 or bfloat16, got ", dtype);
}

inline void check_matches(const std::string& op, const char* name, const at::Tensor& t, const char* other_name,
                          const at::Tensor& other) {
  TORCH_CHECK(t.sizes() == other.sizes(), op, ": ", name, " must have the shape of ", other_name, " ",
              other.sizes(), ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == other.scalar_type(), op, ": ", name, " must have the dtype of ", other_name,
              " (", other.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == other.device(), op, ": ", name, " must be on the device of ", other_name, " (",
              other.device(), "), got ", t.device());
}

// `t` itself when the kernels can walk it in memory order, else a copy in the
// layout at::empty_like(t) gives.
inline at::Tensor dense(const at::Tensor& t) {
  if (t.is_non_overlapping_and_dense()) return t;
  return at::empty_like(t).copy_(t);
}

// `t` with the strides of the dense tensor `layout` (copied only if they differ).
inline at::Tensor in_layout_of(const at::Tensor& t, const at::Tensor& layout) {
  if (t.strides() == layout.strides()) return t;
  return at::empty_like(layout).copy_(t);
}

template <class Act, class Driver, class MakeParams>
at::Tensor elementwise_forward(const std::string& op, const at::Tensor& input, const MakeParams& make_params) {
  check_floating(op, "input", input);
  const at::Tensor x = dense(input);
  at::Tensor y = at::empty_like(x);
  if (x.numel() > 0) Driver::template map_forward<Act>(x, y, make_params);
  return y;
}

template <class Act, class Driver, class MakeParams>
at::Tensor elementwise_backward(const std::string& op, const at::Tensor& grad_output, const char* saved_name,
                                const at::Tensor& saved, const MakeParams& make_params) {
  check_floating(op, saved_name, saved);
  check_matches(op, "grad_output", grad_output, saved_name, saved);
  const at::Tensor s = dense(saved);
  const at::Tensor g = in_layout_of(grad_output, s);
  at::Tensor grad_input = at::empty_like(s);
  if (s.numel() > 0) Driver::template map_backward<Act>(g, s, grad_input, make_params);
  return grad_input;
}

// The parameter of a channel op: one value, or one per channel of dim 1.
inline DimLayout checked_channel_layout(const std::string& op, const char* name, const at::Tensor& input,
                                        const at::Tensor& parameter) {
  check_floating(op, "input", input);
  TORCH_CHECK(parameter.scalar_type() == input.scalar_type(), op, ": ", name, " must have the input's dtype (",
              input.scalar_type(), "), got ", parameter.scalar_type());
  TORCH_CHECK(parameter.device() == input.device(), op, ": ", name, " must be on the input's device (",
              input.device(), "), got ", parameter.device());
  TORCH_CHECK(parameter.dim() <= 1, op, ": ", name, " must be a scalar or a 1-D tensor, got shape ",
              parameter.sizes());
  DimLayout layout;
  if (parameter.numel() == 1) {
    layout.inner = input.numel();
    return layout;
  }
  const int64_t channels = input.dim() >= 2 ? input.size(1) : 1;
  TORCH_CHECK(parameter.numel() == channels, op, ": ", name, " must have one value or one per channel (dim 1 of ",
              "the input, size ", channels, "), got ", parameter.numel(), " values");
  layout.outer = input.size(0);
  layout.size = channels;
  layout.inner = channels == 0 || layout.outer == 0 ? 0 : input.numel() / (layout.outer * channels);
  return layout;
}

template <class Act, class Driver>
at::Tensor channel_forward(const std::string& op, const char* name, const at::Tensor& input,
                           const at::Tensor& parameter) {
  const DimLayout layout = checked_channel_layout(op, name, input, parameter);
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty(input.sizes(), input.options());
  if (x.numel() > 0) {
    const at::Tensor p = parameter.to(accumulation_dtype(input.scalar_type())).contiguous();
    Driver::template channel_forward<Act>(x, p, layout, y);
  }
  return y;
}

// (dL/dx, dL/dparameter); the second is empty unless compute_parameter_grad.
template <class Act, class Driver>
std::tuple<at::Tensor, at::Tensor> channel_backward(const std::string& op, const char* name,
                                                    const at::Tensor& grad_output, const at::Tensor& input,
                                                    const at::Tensor& parameter, bool compute_parameter_grad) {
  const DimLayout layout = checked_channel_layout(op, name, input, parameter);
  check_matches(op, "grad_output", grad_output, "input", input);
  const auto acc = accumulation_dtype(input.scalar_type());
  const at::Tensor x = input.contiguous();
  const at::Tensor g = grad_output.contiguous();
  at::Tensor grad_input = at::empty(input.sizes(), input.options());
  at::Tensor grad_parameter;
  if (compute_parameter_grad) grad_parameter = at::zeros({parameter.numel()}, parameter.options().dtype(acc));
  if (x.numel() > 0) {
    const at::Tensor p = parameter.to(acc).contiguous();
    Driver::template channel_backward<Act>(g, x, p, layout, grad_input, grad_parameter);
  }
  if (!compute_parameter_grad) return {grad_input, at::empty({0}, parameter.options())};
  return {grad_input, grad_parameter.to(parameter.scalar_type()).view(parameter.sizes())};
}

inline DimLayout softmax_layout(const at::Tensor& t, int64_t dim) {
  DimLayout layout;
  if (t.dim() == 0) return layout;  // a 0-d tensor is one row of one element
  for (int64_t d = 0; d < dim; ++d) layout.outer *= t.size(d);
  layout.size = t.size(dim);
  for (int64_t d = dim + 1; d < t.dim(); ++d) layout.inner *= t.size(d);
  return layout;
}

template <class Driver>
struct ActivationOps {
  template <class Act>
  struct NoParams {
    template <typename T>
    typename Act::template Params<T> operator()(T) const { return {}; }
  };

  static at::Tensor relu_forward(const at::Tensor& input) {
    return elementwise_forward<Relu, Driver>("lossext::relu_forward", input, NoParams<Relu>());
  }
  static at::Tensor relu_backward(const at::Tensor& grad_output, const at::Tensor& output) {
    return elementwise_backward<Relu, Driver>("lossext::relu_backward", grad_output, "output", output,
                                              NoParams<Relu>());
  }

  static at::Tensor leaky_relu_forward(const at::Tensor& input, double negative_slope) {
    return elementwise_forward<LeakyRelu, Driver>("lossext::leaky_relu_forward", input, [&](auto acc) {
      using T = decltype(acc);
      return LeakyRelu::Params<T>{T(negative_slope)};
    });
  }
  static at::Tensor leaky_relu_backward(const at::Tensor& grad_output, const at::Tensor& saved,
                                        double negative_slope, bool saved_is_output) {
    TORCH_CHECK(!saved_is_output || negative_slope >= 0, "lossext::leaky_relu_backward: the output decides the ",
                "branch only for negative_slope >= 0, got ", negative_slope, "; pass the input");
    return elementwise_backward<LeakyRelu, Driver>("lossext::leaky_relu_backward", grad_output, "saved", saved,
                                                   [&](auto acc) {
                                                     using T = decltype(acc);
                                                     return LeakyRelu::Params<T>{T(negative_slope)};
                                                   });
  }

  static at::Tensor elu_forward(const at::Tensor& input, double alpha) {
    return elementwise_forward<Elu, Driver>("lossext::elu_forward", input, [&](auto acc) {
      using T = decltype(acc);
      return Elu::Params<T>{T(alpha), T(1)};
    });
  }
  static at::Tensor elu_backward(const at::Tensor& grad_output, const at::Tensor& input, double alpha) {
    return elementwise_backward<Elu, Driver>("lossext::elu_backward", grad_output, "input", input, [&](auto acc) {
      using T = decltype(acc);
      return Elu::Params<T>{T(alpha), T(1)};
    });
  }

  static at::Tensor selu_forward(const at::Tensor& input) {
    return elementwise_forward<Elu, Driver>("lossext::selu_forward", input, [](auto acc) {
      using T = decltype(acc);
      return Elu::Params<T>{T(kSeluAlpha), T(kSeluScale)};
    });
  }
  static at::Tensor selu_backward(const at::Tensor& grad_output, const at::Tensor& input) {
    return elementwise_backward<Elu, Driver>("lossext::selu_backward", grad_output, "input", input, [](auto acc) {
      using T = decltype(acc);
      return Elu::Params<T>{T(kSeluAlpha), T(kSeluScale)};
    });
  }

  static at::Tensor silu_forward(const at::Tensor& input) {
    return elementwise_forward<Silu, Driver>("lossext::silu_forward", input, NoParams<Silu>());
  }
  static at::Tensor silu_backward(const at::Tensor& grad_output, const at::Tensor& input) {
    return elementwise_backward<Silu, Driver>("lossext::silu_backward", grad_output, "input", input,
                                              NoParams<Silu>());
  }

  static bool gelu_uses_tanh(const std::string& op, c10::string_view approximate) {
    TORCH_CHECK(approximate == "none" || approximate == "tanh", op,
                ": approximate must be 'none' or 'tanh', got '", std::string(approximate), "'");
    return approximate == "tanh";
  }
  static at::Tensor gelu_forward(const at::Tensor& input, c10::string_view approximate) {
    const bool use_tanh = gelu_uses_tanh("lossext::gelu_forward", approximate);
    return elementwise_forward<Gelu, Driver>("lossext::gelu_forward", input, [&](auto acc) {
      return Gelu::Params<decltype(acc)>{use_tanh};
    });
  }
  static at::Tensor gelu_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                  c10::string_view approximate) {
    const bool use_tanh = gelu_uses_tanh("lossext::gelu_backward", approximate);
    return elementwise_backward<Gelu, Driver>("lossext::gelu_backward", grad_output, "input", input,
                                              [&](auto acc) { return Gelu::Params<decltype(acc)>{use_tanh}; });
  }

  static at::Tensor sigmoid_forward(const at::Tensor& input) {
    return elementwise_forward<Sigmoid, Driver>("lossext::sigmoid_forward", input, NoParams<Sigmoid>());
  }
  static at::Tensor sigmoid_backward(const at::Tensor& grad_output, const at::Tensor& output) {
    return elementwise_backward<Sigmoid, Driver>("lossext::sigmoid_backward", grad_output, "output", output,
                                                 NoParams<Sigmoid>());
  }

  static at::Tensor tanh_forward(const at::Tensor& input) {
    return elementwise_forward<Tanh, Driver>("lossext::tanh_forward", input, NoParams<Tanh>());
  }
  static at::Tensor tanh_backward(const at::Tensor& grad_output, const at::Tensor& output) {
    return elementwise_backward<Tanh, Driver>("lossext::tanh_backward", grad_output, "output", output,
                                              NoParams<Tanh>());
  }

  static void check_hardtanh_bounds(const std::string& op, double min_val, double max_val) {
    TORCH_CHECK(!std::isnan(min_val) && !std::isnan(max_val), op, ": min_val and max_val must not be NaN, got ",
                "min_val=", min_val, " max_val=", max_val);
    TORCH_CHECK(min_val <= max_val, op, ": min_val cannot be greater than max_val, got min_val=", min_val,
                " max_val=", max_val);
  }
  // The bounds in the accumulation type, unrounded to the tensor's dtype (relu_family.h).
  static at::Tensor hardtanh_forward(const at::Tensor& input, double min_val, double max_val) {
    check_hardtanh_bounds("lossext::hardtanh_forward", min_val, max_val);
    return elementwise_forward<Hardtanh, Driver>("lossext::hardtanh_forward", input, [&](auto acc) {
      using T = decltype(acc);
      return Hardtanh::Params<T>{T(min_val), T(max_val)};
    });
  }
  static at::Tensor hardtanh_backward(const at::Tensor& grad_output, const at::Tensor& saved, double min_val,
                                      double max_val) {
    check_hardtanh_bounds("lossext::hardtanh_backward", min_val, max_val);
    return elementwise_backward<Hardtanh, Driver>("lossext::hardtanh_backward", grad_output, "saved", saved,
                                                  [&](auto acc) {
                                                    using T = decltype(acc);
                                                    return Hardtanh::Params<T>{T(min_val), T(max_val)};
                                                  });
  }

  static at::Tensor prelu_forward(const at::Tensor& input, const at::Tensor& weight) {
    return channel_forward<Prelu, Driver>("lossext::prelu_forward", "weight", input, weight);
  }
  static std::tuple<at::Tensor, at::Tensor> prelu_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                           const at::Tensor& weight, bool compute_weight_grad) {
    return channel_backward<Prelu, Driver>("lossext::prelu_backward", "weight", grad_output, input, weight,
                                           compute_weight_grad);
  }

  static at::Tensor swish_forward(const at::Tensor& input, const at::Tensor& beta) {
    return channel_forward<Swish, Driver>("lossext::swish_forward", "beta", input, beta);
  }
  static std::tuple<at::Tensor, at::Tensor> swish_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                           const at::Tensor& beta, bool compute_beta_grad) {
    return channel_backward<Swish, Driver>("lossext::swish_backward", "beta", grad_output, input, beta,
                                           compute_beta_grad);
  }

  static at::Tensor softmax_forward(const at::Tensor& input, int64_t dim) {
    const std::string op = "lossext::softmax_forward";
    check_floating(op, "input", input);
    const int64_t wrapped = at::maybe_wrap_dim(dim, std::max<int64_t>(input.dim(), 1));
    const at::Tensor x = input.contiguous();
    at::Tensor y = at::empty(input.sizes(), input.options());
    if (x.numel() > 0) Driver::softmax_forward(x, softmax_layout(x, wrapped), y);
    return y;
  }
  static at::Tensor softmax_backward(const at::Tensor& grad_output, const at::Tensor& output, int64_t dim) {
    const std::string op = "lossext::softmax_backward";
    check_floating(op, "output", output);
    check_matches(op, "grad_output", grad_output, "output", output);
    const int64_t wrapped = at::maybe_wrap_dim(dim, std::max<int64_t>(output.dim(), 1));
    const at::Tensor y = output.contiguous();
    const at::Tensor g = grad_output.contiguous();
    at::Tensor grad_input = at::empty(output.sizes(), output.options());
    if (y.numel() > 0) Driver::softmax_backward(g, y, softmax_layout(y, wrapped), grad_input);
    return grad_input;
  }
};

// Registers ActivationOps<Driver>::<name>_forward and _backward as the kernels
// of every activation in LOSSEXT_FOR_EACH_ACTIVATION, for the dispatch key of
// the TORCH_LIBRARY_IMPL block that passes `m`.
template <class Driver>
void register_activation_kernels(torch::Library& m) {
  using Ops = ActivationOps<Driver>;
#define LOSSEXT_REGISTER_ACTIVATION(name, forward_arguments, backward_arguments) \
  m.impl(#name "_forward", &Ops::name##_forward);                               \
  m.impl(#name "_backward", &Ops::name##_backward);
  LOSSEXT_FOR_EACH_ACTIVATION(LOSSEXT_REGISTER_ACTIVATION)
#undef LOSSEXT_REGISTER_ACTIVATION
}

}  // namespace lossext
