"""Activations with fused forward and backward kernels: the functional API, fake kernels and autograd formulas.

Each activation `<name>` runs `torch.ops.lossext.<name>_forward` when lossext._C
has kernels for the input's device, and lossext.activation_reference otherwise.
The autograd formula registered here for the forward op saves one tensor and
calls `torch.ops.lossext.<name>_backward`, itself an op usable from other code:

    saved       activations
    output      relu, sigmoid, tanh, hardtanh, selu, softmax,
                leaky_relu (negative_slope >= 0), elu (alpha >= 0)
    input       silu, gelu, leaky_relu (negative_slope < 0), elu (alpha < 0),
                prelu and swish (with their parameter)

Saving the output lets the input be freed when nothing else holds it.
Schemas: csrc/activation_registration.cpp.
"""

from typing import Optional, Union

import torch

from . import _extension, activation_reference

# The same functions as the reference, each with a fused kernel behind it.
__all__ = list(activation_reference.__all__)

_SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _use_kernels(name: str, input: torch.Tensor, inplace: bool = False) -> bool:
    """Check a call as both backends require, and say whether the kernels run it."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"lossext.{name}: input must be a tensor, got {type(input).__name__}")
    if input.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"lossext.{name}: input must be float32, float64, float16 or bfloat16, got {input.dtype}")
    if inplace:
        raise NotImplementedError(f"lossext.{name}: inplace=True is not supported; call it with inplace=False")
    return _extension.use_extension(input.device)


def _check_parameter(name: str, argument: str, input: torch.Tensor, parameter: torch.Tensor) -> None:
    """PReLU's weight and Swish's beta: one value or one per channel of dim 1, in the input's dtype and device."""
    if parameter.dtype != input.dtype:
        raise TypeError(f"lossext.{name}: {argument} must have the input's dtype ({input.dtype}), got {parameter.dtype}")
    if parameter.device != input.device:
        raise RuntimeError(f"lossext.{name}: {argument} must be on the input's device ({input.device}), "
                           f"got {parameter.device}")
    if parameter.dim() > 1:
        raise RuntimeError(f"lossext.{name}: {argument} must be a scalar or a 1-D tensor, got shape "
                           f"{tuple(parameter.shape)}")
    channels = input.shape[1] if input.dim() >= 2 else 1
    if parameter.numel() != 1 and parameter.numel() != channels:
        raise RuntimeError(f"lossext.{name}: {argument} must have one value or one per channel (dim 1 of the "
                           f"input, size {channels}), got {parameter.numel()} values")


def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """max(x, 0), as torch.nn.functional.relu; saves the output."""
    if not _use_kernels("relu", input, inplace):
        return activation_reference.relu(input)
    return torch.ops.lossext.relu_forward(input)


def leaky_relu(input: torch.Tensor, negative_slope: float = 0.01, inplace: bool = False) -> torch.Tensor:
    """x for x > 0, negative_slope * x otherwise; saves the output for negative_slope >= 0."""
    if not _use_kernels("leaky_relu", input, inplace):
        return activation_reference.leaky_relu(input, negative_slope)
    return torch.ops.lossext.leaky_relu_forward(input, float(negative_slope))


def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with learnable slope `weight`, one value or one per channel (dim 1); saves input and weight."""
    use_kernels = _use_kernels("prelu", input)
    _check_parameter("prelu", "weight", input, weight)
    if not use_kernels:
        return activation_reference.prelu(input, weight)
    return torch.ops.lossext.prelu_forward(input, weight)


def elu(input: torch.Tensor, alpha: float = 1.0, inplace: bool = False) -> torch.Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise; saves the output for alpha >= 0."""
    if not _use_kernels("elu", input, inplace):
        return activation_reference.elu(input, alpha)
    return torch.ops.lossext.elu_forward(input, float(alpha))


def selu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """SELU (scaled ELU with alpha 1.6733, scale 1.0507); saves the output."""
    if not _use_kernels("selu", input, inplace):
        return activation_reference.selu(input)
    return torch.ops.lossext.selu_forward(input)


def silu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """x * sigmoid(x); saves the input."""
    if not _use_kernels("silu", input, inplace):
        return activation_reference.silu(input)
    return torch.ops.lossext.silu_forward(input)


def swish(input: torch.Tensor, beta: Union[float, torch.Tensor]) -> torch.Tensor:
    """x * sigmoid(beta * x); beta a float, or a tensor (one value or one per channel of dim 1) that may
    require grad. beta = 1 is SiLU. Saves the input and beta."""
    use_kernels = _use_kernels("swish", input)
    if isinstance(beta, torch.Tensor):
        _check_parameter("swish", "beta", input, beta)
    elif not isinstance(beta, (int, float)):
        raise TypeError(f"lossext.swish: beta must be a float or a tensor, got {type(beta).__name__}")
    if not use_kernels:
        return activation_reference.swish(input, beta)
    beta_tensor = beta if isinstance(beta, torch.Tensor) else torch.full((), float(beta), dtype=input.dtype,
                                                                         device=input.device)
    return torch.ops.lossext.swish_forward(input, beta_tensor)


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """x Phi(x), or its tanh approximation (approximate="tanh"); saves the input."""
    use_kernels = _use_kernels("gelu", input)
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"lossext.gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    if not use_kernels:
        return activation_reference.gelu(input, approximate)
    return torch.ops.lossext.gelu_forward(input, approximate)


def sigmoid(input: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^-x); saves the output."""
    if not _use_kernels("sigmoid", input):
        return activation_reference.sigmoid(input)
    return torch.ops.lossext.sigmoid_forward(input)


def tanh(input: torch.Tensor) -> torch.Tensor:
    """tanh x; saves the output."""
    if not _use_kernels("tanh", input):
        return activation_reference.tanh(input)
    return torch.ops.lossext.tanh_forward(input)


def hardtanh(input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> torch.Tensor:
    """clamp(x, min_val, max_val); saves the output."""
    use_kernels = _use_kernels("hardtanh", input, inplace)
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if not use_kernels:
        return activation_reference.hardtanh(input, min_val, max_val)
    return torch.ops.lossext.hardtanh_forward(input, float(min_val), float(max_val))


def softmax(input: torch.Tensor, dim: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Softmax along `dim` (any dim; a non-last one is handled in place, not transposed); saves the output.
    With `dtype`, the input is cast to it first, as torch.nn.functional.softmax does."""
    if dtype is not None:
        input = input.to(dtype)
    if not _use_kernels("softmax", input):
        return activation_reference.softmax(input, dim)
    return torch.ops.lossext.softmax_forward(input, dim)


# ---- Fake kernels (shapes and strides only, for torch.compile and meta tensors). ----


def _register_fake_kernels() -> None:
    def like_input(input, *params):
        return torch.empty_like(input)

    def like_saved(grad_output, saved, *params):
        return torch.empty_like(saved)

    for name in ("relu", "leaky_relu", "elu", "selu", "silu", "gelu", "sigmoid", "tanh", "hardtanh"):
        torch.library.register_fake(f"lossext::{name}_forward")(like_input)
        torch.library.register_fake(f"lossext::{name}_backward")(like_saved)

    def channel_forward(input, parameter):
        return input.new_empty(input.shape)

    def channel_backward(grad_output, input, parameter, compute_parameter_grad):
        grad_parameter = parameter.new_empty(parameter.shape) if compute_parameter_grad else parameter.new_empty((0,))
        return input.new_empty(input.shape), grad_parameter

    for name in ("prelu", "swish"):
        torch.library.register_fake(f"lossext::{name}_forward")(channel_forward)
        torch.library.register_fake(f"lossext::{name}_backward")(channel_backward)

    @torch.library.register_fake("lossext::softmax_forward")
    def _softmax_forward(input, dim):
        return input.new_empty(input.shape)

    @torch.library.register_fake("lossext::softmax_backward")
    def _softmax_backward(grad_output, output, dim):
        return output.new_empty(output.shape)


# ---- Autograd formulas of the forward ops. ----


def _save_output(ctx, inputs, output) -> None:
    ctx.save_for_backward(output)


def _save_input(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0])


def _register_autograd() -> None:
    ops = torch.ops.lossext
    register = torch.library.register_autograd

    # Parameter-free activations: one saved tensor, the gradient of the input only.
    register("lossext::relu_forward", lambda ctx, g: ops.relu_backward(g, *ctx.saved_tensors),
             setup_context=_save_output)
    register("lossext::selu_forward", lambda ctx, g: ops.selu_backward(g, *ctx.saved_tensors),
             setup_context=_save_output)
    register("lossext::sigmoid_forward", lambda ctx, g: ops.sigmoid_backward(g, *ctx.saved_tensors),
             setup_context=_save_output)
    register("lossext::tanh_forward", lambda ctx, g: ops.tanh_backward(g, *ctx.saved_tensors),
             setup_context=_save_output)
    register("lossext::silu_forward", lambda ctx, g: ops.silu_backward(g, *ctx.saved_tensors),
             setup_context=_save_input)

    # Output-based for slopes >= 0 (the output's sign is then the input's), input-based otherwise.
    def setup_sloped(ctx, inputs, output):
        ctx.slope = inputs[1]
        ctx.saved_is_output = inputs[1] >= 0
        ctx.save_for_backward(output if ctx.saved_is_output else inputs[0])

    register("lossext::leaky_relu_forward",
             lambda ctx, g: (ops.leaky_relu_backward(g, *ctx.saved_tensors, ctx.slope, ctx.saved_is_output), None),
             setup_context=setup_sloped)
    register("lossext::elu_forward",
             lambda ctx, g: (ops.elu_backward(g, *ctx.saved_tensors, ctx.slope, ctx.saved_is_output), None),
             setup_context=setup_sloped)

    def setup_gelu(ctx, inputs, output):
        ctx.approximate = inputs[1]
        ctx.save_for_backward(inputs[0])

    register("lossext::gelu_forward",
             lambda ctx, g: (ops.gelu_backward(g, *ctx.saved_tensors, ctx.approximate), None),
             setup_context=setup_gelu)

    def setup_hardtanh(ctx, inputs, output):
        ctx.bounds = inputs[1:]
        ctx.save_for_backward(output)

    register("lossext::hardtanh_forward",
             lambda ctx, g: (ops.hardtanh_backward(g, *ctx.saved_tensors, *ctx.bounds), None, None),
             setup_context=setup_hardtanh)

    def setup_softmax(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.save_for_backward(output)

    register("lossext::softmax_forward",
             lambda ctx, g: (ops.softmax_backward(g, *ctx.saved_tensors, ctx.dim), None),
             setup_context=setup_softmax)

    # Channel activations: the input and the parameter; the parameter's gradient only when asked for.
    def setup_channel(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])

    def channel_backward(op):
        def backward(ctx, g):
            input, parameter = ctx.saved_tensors
            grad_input, grad_parameter = op(g, input, parameter, ctx.needs_input_grad[1])
            return grad_input, (grad_parameter if ctx.needs_input_grad[1] else None)

        return backward

    register("lossext::prelu_forward", channel_backward(ops.prelu_backward), setup_context=setup_channel)
    register("lossext::swish_forward", channel_backward(ops.swish_backward), setup_context=setup_channel)


if _extension.extension_loaded():
    _register_fake_kernels()
    _register_autograd()
