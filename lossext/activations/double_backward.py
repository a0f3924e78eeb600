"""Double backward of the activations: an autograd formula for every `<name>_backward` op.

An elementwise backward op computes grad_input = g h(s): the upstream gradient g times the slope h
read off the saved tensor s (the output or the input, lossext.activations.ops). It is linear in g,
so its vector-Jacobian product with a cotangent v is

    along g:  v h(s)         = the backward op itself, applied to v (the kernel, with its exact semantics)
    along s:  g v h'(s)      with h' below (0 for the piecewise-linear ones)

and where s is the output, autograd carries the second part on through the forward op (dL/dx =
dL/dy f'(x)). Softmax, PReLU and Swish have their own products below. Everything is PyTorch ops and
backward ops with these formulas, so with create_graph=True again the products are differentiable
too. The slopes' derivatives are computed in the accumulation dtype (float32 for half types).
"""

import math
from typing import Callable, Dict, Optional, Sequence

import torch

from .._dtypes import accumulation_dtype
from .reference import SELU_ALPHA, SELU_SCALE, channel_view, logistic


def _compute(t: torch.Tensor) -> torch.Tensor:
    return t.to(accumulation_dtype(t.dtype))


def _elu_slope_derivative(x: torch.Tensor, saved_is_output: bool, alpha: float, scale: float = 1.0):
    """h = scale for x > 0, scale alpha e^x otherwise (the saved tensor is the input, ops.py)."""
    return torch.where(x > 0, torch.zeros_like(x), scale * alpha * torch.exp(x))


def _silu_slope_derivative(x: torch.Tensor, saved_is_output: bool):
    """h = s (1 + x (1 - s)), s = sigmoid(x): h' = s (1 - s) (2 + x (1 - 2 s))."""
    s = logistic(x)
    return s * (1 - s) * (2 + x * (1 - 2 * s))


_SQRT_TWO_OVER_PI = math.sqrt(2 / math.pi)
_GELU_CUBIC = 0.044715


def _gelu_slope_derivative(x: torch.Tensor, saved_is_output: bool, approximate: str):
    """exact: h = Phi(x) + x phi(x), phi' = -x phi: h' = phi(x) (2 - x^2).
    tanh: h = sigma + 2 x sigma (1 - sigma) u', sigma = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3):
    h' = sigma (1 - sigma) (4 u' + 4 x u'^2 (1 - 2 sigma) + 2 x u'')."""
    if approximate == "tanh":
        inner = _SQRT_TWO_OVER_PI * (x + _GELU_CUBIC * x * x * x)
        inner_slope = _SQRT_TWO_OVER_PI * (1 + 3 * _GELU_CUBIC * x * x)
        inner_curvature = _SQRT_TWO_OVER_PI * 6 * _GELU_CUBIC * x
        sigma = logistic(2 * inner)
        spread = sigma * (1 - sigma)
        return spread * (4 * inner_slope + 4 * x * inner_slope * inner_slope * (1 - 2 * sigma)
                         + 2 * x * inner_curvature)
    density = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return density * (2 - x * x)


# h'(s) of each elementwise activation, from (s in the accumulation dtype, whether s is the output, *params);
# None where h is piecewise constant (ReLU, leaky ReLU, hardtanh: h' = 0).
SlopeDerivative = Optional[Callable[..., torch.Tensor]]
SLOPE_DERIVATIVES: Dict[str, SlopeDerivative] = {
    "relu": None,
    "leaky_relu": None,
    "hardtanh": None,
    "elu": _elu_slope_derivative,
    "selu": lambda s, saved_is_output: _elu_slope_derivative(s, saved_is_output, SELU_ALPHA, SELU_SCALE),
    "silu": _silu_slope_derivative,
    "gelu": _gelu_slope_derivative,
    "sigmoid": lambda y, saved_is_output: 1 - 2 * y,  # h = y (1 - y)
    "tanh": lambda y, saved_is_output: -2 * y,  # h = 1 - y^2
}


def register_elementwise(name: str, saves_output: Callable[[torch.Tensor, Sequence], bool],
                         passes_saved_is_output: bool) -> None:
    """`<name>_backward(grad_output, saved, *params[, saved_is_output])`: the products of the module docstring."""
    backward_op = getattr(torch.ops.lossext, f"{name}_backward")
    slope_derivative = SLOPE_DERIVATIVES[name]

    def setup_context(ctx, inputs, output) -> None:
        grad_output, saved, *rest = inputs
        params = rest[:-1] if passes_saved_is_output else rest
        ctx.rest, ctx.params = rest, params
        ctx.saved_is_output = rest[-1] if passes_saved_is_output else saves_output(saved, params)  # same dtype as the input
        ctx.save_for_backward(grad_output, saved)

    def backward(ctx, grad_of_grad_input):
        grad_output, saved = ctx.saved_tensors
        grad_of_grad_output = backward_op(grad_of_grad_input, saved, *ctx.rest) if ctx.needs_input_grad[0] else None
        grad_of_saved = None
        if ctx.needs_input_grad[1]:
            if slope_derivative is None:
                grad_of_saved = torch.zeros_like(saved)
            else:
                derivative = slope_derivative(_compute(saved), ctx.saved_is_output, *ctx.params)
                grad_of_saved = (_compute(grad_output) * _compute(grad_of_grad_input) * derivative).to(saved.dtype)
        return (grad_of_grad_output, grad_of_saved) + (None,) * len(ctx.rest)

    torch.library.register_autograd(f"lossext::{name}_backward", backward, setup_context=setup_context)


def register_softmax() -> None:
    """grad_input = y (g - <g, y>) along dim; along y: v (g - <g, y>) - g <v, y>."""

    def setup_context(ctx, inputs, output) -> None:
        grad_output, output_saved, dim = inputs
        ctx.dim = dim
        ctx.save_for_backward(grad_output, output_saved)

    def backward(ctx, grad_of_grad_input):
        grad_output, y = ctx.saved_tensors
        grad_of_grad_output = grad_of_y = None
        if ctx.needs_input_grad[0]:
            grad_of_grad_output = torch.ops.lossext.softmax_backward(grad_of_grad_input, y, ctx.dim)
        if ctx.needs_input_grad[1]:
            g, v, yc = _compute(grad_output), _compute(grad_of_grad_input), _compute(y)
            grad_of_y = v * (g - (g * yc).sum(ctx.dim, keepdim=True)) - g * (v * yc).sum(ctx.dim, keepdim=True)
            grad_of_y = grad_of_y.to(y.dtype)
        return grad_of_grad_output, grad_of_y, None

    torch.library.register_autograd("lossext::softmax_backward", backward, setup_context=setup_context)


def _sum_to_parameter(t: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """t (the input's shape) summed to a channel parameter's shape: over all but dim 1, or over everything."""
    if parameter.numel() == 1:
        return t.sum().reshape(parameter.shape)
    return t.sum(dim=[d for d in range(t.dim()) if d != 1]).reshape(parameter.shape)


def _prelu_products(g, x, w, v_input, v_weight):
    """grad_input = g (1 or w), grad_weight = sum g x [x <= 0]: along g, v_input (1 or w) + v_weight x [x <= 0]
    (the first term is the kernel's); along x, v_weight g [x <= 0]; along w, sum v_input g [x <= 0].
    NaN takes the negative branch, as in the kernel."""
    xc, gc = _compute(x), _compute(g)
    negative = ~(xc > 0)
    along_g = torch.ops.lossext.prelu_backward(v_input, x, w, False)[0]
    along_x = torch.zeros_like(x)
    if v_weight is not None:
        vw = channel_view(_compute(v_weight), x)
        along_g = along_g + (vw * xc * negative).to(x.dtype)
        along_x = (vw * gc * negative).to(x.dtype)
    along_w = _sum_to_parameter(_compute(v_input) * gc * negative, w).to(w.dtype)
    return along_g, along_x, along_w


def _swish_products(g, x, beta, v_input, v_beta):
    """With s = sigmoid(beta x), s1 = s (1 - s), s2 = s1 (1 - 2 s), q = 2 s1 + beta x s2:
    grad_input = g (s + beta x s1), grad_beta = sum g x^2 s1, so
    along g:    v_input (s + beta x s1) (the kernel's) + v_beta x^2 s1
    along x:    g q (beta v_input + x v_beta)
    along beta: sum g (v_input x q + v_beta x^3 s2)."""
    xc, gc, vc = _compute(x), _compute(g), _compute(v_input)
    b = channel_view(_compute(beta), x)
    s = logistic(b * xc)
    s1 = s * (1 - s)
    s2 = s1 * (1 - 2 * s)
    q = 2 * s1 + b * xc * s2
    vb = torch.zeros((), dtype=xc.dtype, device=x.device) if v_beta is None else channel_view(_compute(v_beta), x)
    along_g = torch.ops.lossext.swish_backward(v_input, x, beta, False)[0]
    if v_beta is not None:
        along_g = along_g + (vb * xc * xc * s1).to(x.dtype)
    along_x = (gc * q * (b * vc + xc * vb)).to(x.dtype)
    along_beta = _sum_to_parameter(gc * (vc * xc * q + vb * xc * xc * xc * s2), beta).to(beta.dtype)
    return along_g, along_x, along_beta


_CHANNEL_PRODUCTS = {"prelu": _prelu_products, "swish": _swish_products}


def register_channel(name: str) -> None:
    """`<name>_backward(grad_output, input, parameter, compute_parameter_grad) -> (grad_input, grad_parameter)`."""
    products = _CHANNEL_PRODUCTS[name]

    def setup_context(ctx, inputs, output) -> None:
        grad_output, input, parameter, compute_parameter_grad = inputs
        ctx.computes_parameter_grad = compute_parameter_grad
        ctx.save_for_backward(grad_output, input, parameter)

    def backward(ctx, grad_of_grad_input, grad_of_grad_parameter):
        grad_output, input, parameter = ctx.saved_tensors
        # Without compute_parameter_grad the op's grad_parameter is an empty tensor, whose cotangent is nothing.
        v_parameter = grad_of_grad_parameter if ctx.computes_parameter_grad else None
        along_g, along_input, along_parameter = products(grad_output, input, parameter, grad_of_grad_input,
                                                         v_parameter)
        needs = ctx.needs_input_grad
        return (along_g if needs[0] else None, along_input if needs[1] else None,
                along_parameter if needs[2] else None, None)

    torch.library.register_autograd(f"lossext::{name}_backward", backward, setup_context=setup_context)
