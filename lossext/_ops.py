"""Fake kernels and autograd formulas for the torch.ops.lossext row-loss ops.

Every row loss `<name>` has two ops (schemas in csrc/registration.cpp):
`<name>_forward(...) -> (loss, grad_input)` and `<name>_backward(...) -> grad_input`.
Two ways to get the gradient, both one fused kernel per pass:

* fused (the CPU default): the forward computes the gradient in the same pass
  over the logits (one read of the logits, one write of the gradient) and
  keeps it for backward, which returns it as is when the upstream gradient is
  exactly 1 (the usual `loss.backward()`) and scales it otherwise.
* recompute (the CUDA default): the forward saves only its inputs; backward
  reads the logits again and writes the scaled gradient. No (N, C) tensor is
  kept alive between forward and backward, and no host sync is needed to
  decide anything.

LOSSEXT_GRADIENT=fused|recompute overrides the default; README.md has the numbers.
"""

import os
from typing import List, Optional, Sequence

import torch

from . import _extension

_GRADIENT_MODES = ("fused", "recompute")
_gradient_mode = os.environ.get("LOSSEXT_GRADIENT") or None
if _gradient_mode is not None and _gradient_mode not in _GRADIENT_MODES:
    raise ValueError(f"LOSSEXT_GRADIENT must be one of {_GRADIENT_MODES}, got {_gradient_mode!r}")


def set_gradient_mode(mode: Optional[str]) -> None:
    """Force "fused" or "recompute" gradients (see the module docstring), or None for the per-device default."""
    global _gradient_mode
    if mode is not None and mode not in _GRADIENT_MODES:
        raise ValueError(f"gradient mode must be one of {_GRADIENT_MODES} or None, got {mode!r}")
    _gradient_mode = mode


def gradient_mode(device: torch.device) -> str:
    if _gradient_mode is not None:
        return _gradient_mode
    return "fused" if device.type == "cpu" else "recompute"


def _op(name: str, kind: str):
    return getattr(torch.ops.lossext, f"{name}_{kind}").default


def row_loss(
    name: str,
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    params: Sequence[float],
    ignore_index: int,
    reduction: int,
) -> torch.Tensor:
    """Run the `name` row loss on (N, C) rows through the dispatcher (autograd included)."""
    compute_grad = input.requires_grad and torch.is_grad_enabled() and gradient_mode(input.device) == "fused"
    loss, _ = _op(name, "forward")(input, target, weight, [float(p) for p in params], ignore_index, reduction,
                                   compute_grad)
    return loss


def save_for_backward(ctx, inputs, output) -> None:
    """setup_context of every `<name>_forward` op (also used by lossext.autograd's Functions)."""
    input, target, weight, params, ignore_index, reduction, compute_grad = inputs
    loss, grad_input = output
    ctx.fused = bool(compute_grad)
    ctx.params = list(params)
    ctx.ignore_index = ignore_index
    ctx.reduction = reduction
    if ctx.fused:
        ctx.save_for_backward(grad_input)
    else:
        ctx.save_for_backward(input, target, weight)
    ctx.set_materialize_grads(False)


def _upstream_is_one(grad_loss: torch.Tensor) -> bool:
    # Only where reading the value costs no device sync and no graph break.
    if torch.compiler.is_compiling() or grad_loss.device.type != "cpu" or grad_loss.numel() != 1:
        return False
    return bool(grad_loss.item() == 1.0)


def input_gradient(ctx, name: str, grad_loss: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """d(loss)/d(input) for the upstream gradient `grad_loss`."""
    if grad_loss is None:
        return None
    if ctx.fused:
        (grad_input,) = ctx.saved_tensors
        if _upstream_is_one(grad_loss):
            return grad_input
        if ctx.reduction == 0:
            return grad_input * grad_loss.unsqueeze(-1).to(grad_input.dtype)
        return grad_input * grad_loss.to(grad_input.dtype)
    input, target, weight = ctx.saved_tensors
    return _op(name, "backward")(grad_loss, input, target, weight, ctx.params, ctx.ignore_index, ctx.reduction)


def _register(name: str) -> None:
    @torch.library.register_fake(f"lossext::{name}_forward")
    def _forward_fake(input, target, weight, params, ignore_index, reduction, compute_grad):
        torch._check(input.dim() == 2, lambda: f"lossext::{name}: input must be 2-D")
        loss = input.new_empty((input.shape[0],) if reduction == 0 else ())
        grad_input = input.new_empty(input.shape) if compute_grad else input.new_empty((0,))
        return loss, grad_input

    @torch.library.register_fake(f"lossext::{name}_backward")
    def _backward_fake(grad_output, input, target, weight, params, ignore_index, reduction):
        torch._check(input.dim() == 2, lambda: f"lossext::{name}_backward: input must be 2-D")
        return input.new_empty(input.shape)

    def _backward(ctx, grad_loss, _grad_of_grad_input):
        return input_gradient(ctx, name, grad_loss), None, None, None, None, None, None

    torch.library.register_autograd(f"lossext::{name}_forward", _backward, setup_context=save_for_backward)


def registered_row_losses() -> List[str]:
    """Names of the row losses whose ops lossext._C defines."""
    names = set()
    for schema in torch._C._jit_get_all_schemas():
        # Other lossext ops (the activations) also end in _forward; a row loss's
        # forward is the one taking (input, target, ...).
        is_row_loss = [a.name for a in schema.arguments[:2]] == ["input", "target"]
        if schema.name.startswith("lossext::") and schema.name.endswith("_forward") and is_row_loss:
            names.add(schema.name[len("lossext::") : -len("_forward")])
    return sorted(names)


if _extension.extension_loaded():
    for _name in registered_row_losses():
        _register(_name)
