"""The activation ops: their names, fake kernels and autograd formulas.

Every activation `<name>` of ACTIVATION_NAMES has two ops (schemas registered by lossext._C from csrc/):
`<name>_forward(input, ...) -> output` and `<name>_backward(grad_output, saved, ...)`, an op usable
from other code too. The autograd formula of the forward op saves one tensor for the backward op:

    saved       activations
    output      relu, sigmoid, tanh, softmax, leaky_relu (negative_slope >= 0),
                hardtanh (both bounds values of the input's dtype)
    input       silu, gelu, elu, selu, leaky_relu (negative_slope < 0),
                hardtanh (a bound between two values of the dtype),
                prelu and swish (with their parameter)

Saving the output lets the input be freed when nothing else holds it; ELU and SELU keep the input
because their slope from the output, y + scale alpha, cancels (csrc/activations/elu.h). The backward
ops have autograd formulas of their own (lossext.activations.double_backward): double backward.
"""

import functools

from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Union

import torch

from .. import _extension
from . import double_backward


def _always(input: torch.Tensor, params: Sequence) -> bool:
    return True


def _never(input: torch.Tensor, params: Sequence) -> bool:
    return False


def _slope_is_not_negative(input: torch.Tensor, params: Sequence) -> bool:
    """With a slope >= 0 the output has the input's sign, which is all the backward needs of the input."""
    return params[0] >= 0


@functools.lru_cache(maxsize=None)
def _is_value_of(value: float, dtype: torch.dtype) -> bool:
    return torch.tensor(value, dtype=dtype, device="cpu").item() == value  # CPU: also under a meta device context


def _bounds_are_values_of_dtype(input: torch.Tensor, params: Sequence) -> bool:
    """Hardtanh's output is a bound exactly when the input was clamped only if both bounds are values of the
    dtype (csrc/activations/relu_family.h): float16 hardtanh(1.0, -1, 1.0001) and hardtanh(1.5, -1, 1.0001)
    are both 1.0."""
    return all(_is_value_of(float(bound), input.dtype) for bound in params)


@dataclass(frozen=True)
class ScalarParamsFormula:
    """An activation whose parameters (after the input) are Python scalars: the backward op takes
    (grad_output, saved, *params), then whether `saved` is the output when `passes_saved_is_output`.

    saves_output(input, params) chooses the saved tensor; keeps_layout says whether the output has the
    input's strides (elementwise kernels) or is contiguous (softmax).
    """

    saves_output: Callable[[torch.Tensor, Sequence], bool]
    passes_saved_is_output: bool = False
    keeps_layout: bool = True

    def fake_forward(self, input, *params):
        return torch.empty_like(input) if self.keeps_layout else input.new_empty(input.shape)

    def fake_backward(self, grad_output, saved, *params):
        return torch.empty_like(saved) if self.keeps_layout else saved.new_empty(saved.shape)

    def setup_context(self, ctx, inputs, output) -> None:
        input, *params = inputs
        ctx.params = params
        ctx.saved_is_output = self.saves_output(input, params)
        ctx.save_for_backward(output if ctx.saved_is_output else input)

    def register_double_backward(self, name: str) -> None:
        if name == "softmax":
            double_backward.register_softmax()
        else:
            double_backward.register_elementwise(name, self.saves_output, self.passes_saved_is_output)

    def backward(self, backward_op, ctx, grad_output):
        (saved,) = ctx.saved_tensors
        flags = (ctx.saved_is_output,) if self.passes_saved_is_output else ()
        grad_input = backward_op(grad_output, saved, *ctx.params, *flags)
        return (grad_input,) + (None,) * len(ctx.params)


@dataclass(frozen=True)
class ChannelParamFormula:
    """PReLU and Swish: a tensor parameter (one value or one per channel) that may require grad. The
    backward op takes (grad_output, input, parameter, compute_parameter_grad) and returns both gradients."""

    def fake_forward(self, input, parameter):
        return input.new_empty(input.shape)

    def fake_backward(self, grad_output, input, parameter, compute_parameter_grad):
        grad_parameter = parameter.new_empty(parameter.shape) if compute_parameter_grad else parameter.new_empty((0,))
        return input.new_empty(input.shape), grad_parameter

    def setup_context(self, ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    def register_double_backward(self, name: str) -> None:
        double_backward.register_channel(name)

    def backward(self, backward_op, ctx, grad_output):
        input, parameter = ctx.saved_tensors
        wants_parameter_grad = ctx.needs_input_grad[1]
        grad_input, grad_parameter = backward_op(grad_output, input, parameter, wants_parameter_grad)
        return grad_input, (grad_parameter if wants_parameter_grad else None)


_SAVES_OUTPUT = ScalarParamsFormula(saves_output=_always)
_SAVES_INPUT = ScalarParamsFormula(saves_output=_never)
_SAVES_BY_SLOPE = ScalarParamsFormula(saves_output=_slope_is_not_negative, passes_saved_is_output=True)
_CHANNEL = ChannelParamFormula()

# Every activation lossext._C defines ops for, in the order of the C++ list, with its autograd formula.
ACTIVATION_FORMULAS: Dict[str, Union[ScalarParamsFormula, ChannelParamFormula]] = {
    "relu": _SAVES_OUTPUT,
    "leaky_relu": _SAVES_BY_SLOPE,
    "prelu": _CHANNEL,
    "elu": _SAVES_INPUT,
    "selu": _SAVES_INPUT,
    "silu": _SAVES_INPUT,
    "swish": _CHANNEL,
    "gelu": _SAVES_INPUT,
    "sigmoid": _SAVES_OUTPUT,
    "tanh": _SAVES_OUTPUT,
    "hardtanh": ScalarParamsFormula(saves_output=_bounds_are_values_of_dtype),
    "softmax": ScalarParamsFormula(saves_output=_always, keeps_layout=False),
}
ACTIVATION_NAMES = tuple(ACTIVATION_FORMULAS)


def _register(name: str, formula: Union[ScalarParamsFormula, ChannelParamFormula]) -> None:
    torch.library.register_fake(f"lossext::{name}_forward")(formula.fake_forward)
    torch.library.register_fake(f"lossext::{name}_backward")(formula.fake_backward)
    backward_op = getattr(torch.ops.lossext, f"{name}_backward")

    def backward(ctx, grad_output):
        return formula.backward(backward_op, ctx, grad_output)

    torch.library.register_autograd(f"lossext::{name}_forward", backward, setup_context=formula.setup_context)
    formula.register_double_backward(name)


if _extension.extension_loaded():
    for _name in ACTIVATION_NAMES:
        _register(_name, ACTIVATION_FORMULAS[_name])
