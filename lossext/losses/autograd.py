"""Explicit torch.autograd.Function classes over the lossext ops.

The public functions (lossext.cross_entropy, ...) call the ops through the
dispatcher, whose autograd formulas are registered in lossext._ops. These
classes run the same forward op and the same backward code for users who
want an autograd.Function: to compose with other Functions, subclass, or call
`.apply` on prepared (N, C) rows.
"""

from typing import Callable, Optional

import torch

from . import _ops, functional
from ._canonical import reduction_code

__all__ = [
    "AlphaLossFunction",
    "CauchySchwarzFunction",
    "ChebyshevFunction",
    "CrossEntropyFunction",
    "ExpectationFunction",
    "HingeFunction",
    "L1Function",
    "L2Function",
    "RegularizedExpectationFunction",
    "RowLossFunction",
    "SquaredLogFunction",
    "TanimotoFunction",
]


class RowLossFunction(torch.autograd.Function):
    """Base class: a row loss `loss_name` on (N, C) logits and (N,) class indices."""

    loss_name = ""

    @classmethod
    def _run(cls, ctx, input, target, weight, params, ignore_index, reduction):
        red = reduction_code(reduction)
        compute_grad = input.requires_grad and _ops.gradient_mode(input.device) == "fused"
        op_inputs = (input, target, weight, list(params), None, ignore_index, red, compute_grad)
        output = _ops._op(cls.loss_name, "forward")(*op_inputs)
        _ops.save_for_backward(ctx, op_inputs, output)
        return output[0]

    @classmethod
    def _input_gradient(cls, ctx, grad_loss):
        return _ops.gradients(ctx, cls.loss_name, grad_loss)[0]


class CrossEntropyFunction(RowLossFunction):
    """`CrossEntropyFunction.apply(input, target, weight, ignore_index, reduction, label_smoothing)`.

    input (N, C) logits, target (N,) class indices; the fused cross-entropy kernel.
    """

    loss_name = "cross_entropy"

    @staticmethod
    def forward(ctx, input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        return CrossEntropyFunction._run(ctx, input, target, weight, [label_smoothing], ignore_index, reduction)

    @staticmethod
    def backward(ctx, grad_loss):
        return CrossEntropyFunction._input_gradient(ctx, grad_loss), None, None, None, None, None


_TRAILING_DEFAULTS = (None, -100, "mean")  # weight, ignore_index, reduction


def row_loss_function(function: Callable) -> type:
    """An autograd.Function over the op of lossext.functional's `function` (the op has its name), with its parameters.

    `apply(input, target, *params, weight=None, ignore_index=-100, reduction="mean")`, all positional
    (autograd.Function.apply takes no keywords); input (N, C) logits, target (N,) class indices.
    """
    loss_name = function.__name__
    param_names = [parameter.name for parameter in functional.loss_parameters(function)]
    num_params = len(param_names)

    def forward(ctx, input, target, *args):
        if not num_params <= len(args) <= num_params + len(_TRAILING_DEFAULTS):
            raise TypeError(f"{function_class.__name__}.apply takes input, target, {', '.join(param_names + [''])}"
                            f"then optionally weight, ignore_index, reduction; got {2 + len(args)} arguments")
        params, rest = args[:num_params], args[num_params:]
        weight, ignore_index, reduction = rest + _TRAILING_DEFAULTS[len(rest):]
        ctx.num_inputs = 2 + len(args)
        return function_class._run(ctx, input, target, weight, params, ignore_index, reduction)

    def backward(ctx, grad_loss):
        return (function_class._input_gradient(ctx, grad_loss),) + (None,) * (ctx.num_inputs - 1)

    class_name = "".join(part.capitalize() for part in loss_name.split("_")) + "Function"
    function_class = type(class_name, (RowLossFunction,), {
        "__doc__": f"`{class_name}.apply(input, target, {', '.join(param_names + [''])}"
                   f"weight=None, ignore_index=-100, reduction='mean')`: lossext.{loss_name} on (N, C) rows.",
        "__module__": __name__,
        "loss_name": loss_name,
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
    })
    return function_class


HingeFunction = row_loss_function(functional.hinge)
L1Function = row_loss_function(functional.l1)
L2Function = row_loss_function(functional.l2)
ExpectationFunction = row_loss_function(functional.expectation)
RegularizedExpectationFunction = row_loss_function(functional.regularized_expectation)
ChebyshevFunction = row_loss_function(functional.chebyshev)
SquaredLogFunction = row_loss_function(functional.squared_log)
TanimotoFunction = row_loss_function(functional.tanimoto)
CauchySchwarzFunction = row_loss_function(functional.cauchy_schwarz)
AlphaLossFunction = row_loss_function(functional.alpha_loss)
