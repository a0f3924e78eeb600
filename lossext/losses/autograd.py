"""Explicit torch.autograd.Function classes over the row-loss ops.

The public functions (lossext.cross_entropy, ...) call the ops through the
dispatcher, whose autograd formulas are registered in lossext.losses.ops. These
classes run the same forward op and the same backward code for users who
want an autograd.Function: to compose with other Functions, subclass, or call
`.apply` on prepared (N, C) rows. `apply` takes its arguments positionally
(autograd.Function.apply takes no keywords), in the order `forward` lists them
after ctx; input is (N, C) logits, target (N,) class indices.
"""

import inspect
from typing import Optional, Sequence

import torch

from .._checks import reduction_code
from . import ops
from .ops import add_public_class
from .reference import PARAMETER_FREE_LOSS_NAMES

# The Functions written out; each parameter-free loss's is made at the end of this file and appended.
__all__ = [
    "AlphaLossFunction",
    "CrossEntropyFunction",
    "HingeFunction",
    "RowLossFunction",
]

# The arguments of every forward besides ctx and the loss's own parameters.
_COMMON_ARGUMENT_COUNT = len(("input", "target", "weight", "ignore_index", "reduction"))


class RowLossFunction(torch.autograd.Function):
    """Base class: a row loss's op on (N, C) logits and (N,) class indices.

    A subclass's forward calls `run` with the loss's op name and its own parameters;
    backward, the same for every loss, returns the input's gradient.
    """

    @classmethod
    def apply(cls, *args):
        """Run `forward(ctx, *args)` with autograd; the arguments are checked against forward's signature."""
        parameters = [parameter.replace(annotation=inspect.Parameter.empty)
                      for parameter in list(inspect.signature(cls.forward).parameters.values())[1:]]  # without ctx
        required = sum(parameter.default is inspect.Parameter.empty for parameter in parameters)
        if not required <= len(args) <= len(parameters):
            raise TypeError(f"{cls.__name__}.apply takes ({', '.join(map(str, parameters))}), positionally; "
                            f"got {len(args)} arguments")
        return super().apply(*args)

    @staticmethod
    def run(ctx, loss_name: str, input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
            params: Sequence[float], ignore_index: int, reduction: str) -> torch.Tensor:
        """The loss of the `loss_name` op, with what backward needs saved on ctx."""
        compute_grad = input.requires_grad and ops.fuses_gradient(input)
        op_inputs = (input, target, weight, list(params), None, ignore_index, reduction_code(reduction), compute_grad)
        output = ops.row_loss_op(loss_name, "forward")(*op_inputs)
        ops.save_for_backward(ctx, op_inputs, output)
        ctx.loss_name = loss_name
        ctx.num_inputs = _COMMON_ARGUMENT_COUNT + len(params)
        return output[0]

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_input = ops.gradients(ctx, ctx.loss_name, grad_loss)[0]
        return (grad_input,) + (None,) * (ctx.num_inputs - 1)


class CrossEntropyFunction(RowLossFunction):
    """lossext.cross_entropy on (N, C) rows; its arguments in F.cross_entropy's order."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0,
                z_loss: float = 0.0, logit_softcap: Optional[float] = None) -> torch.Tensor:
        cap = 0.0 if logit_softcap is None else logit_softcap  # the op's 0: no cap
        return RowLossFunction.run(ctx, "cross_entropy", input, target, weight, [label_smoothing, z_loss, cap],
                                   ignore_index, reduction)


class HingeFunction(RowLossFunction):
    """lossext.hinge on (N, C) rows."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, target: torch.Tensor, p: float, margin: float,
                weight: Optional[torch.Tensor] = None, ignore_index: int = -100,
                reduction: str = "mean") -> torch.Tensor:
        return RowLossFunction.run(ctx, "hinge", input, target, weight, [p, margin], ignore_index, reduction)


class AlphaLossFunction(RowLossFunction):
    """lossext.alpha_loss on (N, C) rows."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, target: torch.Tensor, alpha: float, weight: Optional[torch.Tensor] = None,
                ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
        return RowLossFunction.run(ctx, "alpha_loss", input, target, weight, [alpha], ignore_index, reduction)


def _parameter_free_forward(loss_name: str) -> staticmethod:
    """The forward of a loss without parameters of its own."""

    def forward(ctx, input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
        return RowLossFunction.run(ctx, loss_name, input, target, weight, [], ignore_index, reduction)

    forward.__doc__ = f"The {loss_name} op's loss on (N, C) rows."
    return staticmethod(forward)


for _name in PARAMETER_FREE_LOSS_NAMES:
    add_public_class(globals(), _name, "Function", RowLossFunction, f"lossext.{_name} on (N, C) rows.",
                     forward=_parameter_free_forward(_name))
