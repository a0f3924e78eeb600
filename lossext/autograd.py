"""Explicit torch.autograd.Function classes over the lossext ops.

The public functions (lossext.cross_entropy, ...) call the ops through the
dispatcher, whose autograd formulas are registered in lossext._ops. These
classes run the same forward op and the same backward code for users who
want an autograd.Function: to compose with other Functions, subclass, or call
`.apply` on prepared (N, C) rows.
"""

from typing import Optional

import torch

from . import _ops
from ._canonical import reduction_code

__all__ = ["RowLossFunction", "CrossEntropyFunction"]


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
