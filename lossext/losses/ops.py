"""The row-loss ops: their names, fake kernels, autograd formulas and gradient modes.

Every row loss `<name>` of ROW_LOSS_NAMES has three ops (schemas registered by lossext._C from csrc/):
`<name>_forward(...) -> (loss, grad_input, row_param_grads)`, `<name>_forward_out(..., grad_input) -> loss`
and `<name>_backward(...) -> (grad_input, row_param_grads)`.
Two ways to get the gradient, both one fused kernel per pass:

* fused (the CPU default): the forward computes the gradient in the same pass
  over the logits (one read of the logits, one write of the gradient) and
  keeps it for backward, which hands it to autograd as is when the upstream
  gradient is exactly 1 (the usual `loss.backward()`) and the graph is freed
  after this backward, copies it when the graph is kept (retain_graph=True:
  autograd accumulates into, and users may change, what it is handed, and a
  later backward needs the buffer intact), and scales it otherwise.
* recompute (the CUDA default): the forward saves only its inputs; backward
  reads the logits again and writes the scaled gradient. No (N, C) tensor is
  kept alive between forward and backward, and no host sync is needed to
  decide anything.

Both modes save the inputs (references, no copies), and when a backward builds a graph
(create_graph=True) both call `<name>_backward`, whose autograd formula
(lossext.losses.double_backward) gives the second derivatives.
LOSSEXT_GRADIENT=fused|recompute overrides the default; README.md has the numbers. float16 inputs always
recompute (fuses_gradient says why).
"""

import os
from typing import Optional, Sequence

import torch

from .. import _extension
from .._dtypes import accumulation_dtype
from .._values import values_are_readable
from .double_backward import register_backward_formula

# The row losses lossext._C defines ops for: the C++ list (LOSSEXT_FOR_EACH_ROW_LOSS, csrc/losses/all_losses.h),
# the one place a loss is listed; cross_entropy_probabilities is cross_entropy's op for class-probability
# targets. Empty without the extension, which leaves no op to register.
ROW_LOSS_NAMES = tuple(_extension._C.row_loss_names()) if _extension.extension_loaded() else ()


def public_class_name(loss_name: str, suffix: str) -> str:
    """The module or Function class name of a loss: "cauchy_schwarz", "Loss" -> "CauchySchwarzLoss"."""
    return "".join(part.capitalize() for part in loss_name.split("_")) + suffix


def add_public_class(module_globals: dict, loss_name: str, suffix: str, base: type, doc: str, **attributes) -> None:
    """Define <Name><suffix>, a subclass of `base` with `attributes`, in the module whose globals these are,
    and export it (its __all__): the module or Function of a loss without parameters of its own."""
    name = public_class_name(loss_name, suffix)
    module_globals[name] = type(name, (base,), {"__doc__": doc, "__module__": module_globals["__name__"],
                                                "__qualname__": name, **attributes})
    module_globals["__all__"].append(name)


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


def fuses_gradient(input: torch.Tensor) -> bool:
    """Whether the forward writes the gradient (fused mode) for this input.

    Not for float16, whatever the mode: the fused gradient is stored before the upstream gradient
    scales it, and float16 cannot hold every unscaled gradient whose scaled value it can (its range
    ends at 65504, its normal numbers at 6.1e-5): hinge^4 at o = -90 is -2.96e6, inf in float16,
    while times 1e-3 it is -2965; and AMP's loss scale of 65536 brings back gradients that float16
    had flushed. Recompute folds the upstream in before rounding, once. bfloat16 has float32's range,
    so its fused gradient only rounds twice (the gradient, then its product), within an ulp.
    """
    return gradient_mode(input.device) == "fused" and input.dtype != torch.float16


def row_loss_op(name: str, kind: str):
    """torch.ops.lossext.<name>_<kind>: kind "forward", "forward_out" or "backward", or one of the loss's block ops
    (lossext.losses.row_statistics) or its fused head's."""
    return getattr(torch.ops.lossext, f"{name}_{kind}").default


def row_loss(
    name: str,
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    params: Sequence[float],
    ignore_index: int,
    reduction: int,
    tensor_params: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Run the `name` row loss on (N, C) rows through the dispatcher (autograd included).

    tensor_params: the loss's learnable scalars as one 1-D tensor (may require grad), or None.
    """
    wants_grad = input.requires_grad or (tensor_params is not None and tensor_params.requires_grad)
    compute_grad = wants_grad and torch.is_grad_enabled() and fuses_gradient(input)
    loss, _, _ = row_loss_op(name, "forward")(input, target, weight, [float(p) for p in params], tensor_params,
                                      ignore_index, reduction, compute_grad)
    return loss


def save_for_backward(ctx, inputs, output) -> None:
    """setup_context of every `<name>_forward` op (also used by lossext.autograd's Functions): the inputs,
    and in the fused mode the gradients the forward computed."""
    input, target, weight, params, tensor_params, ignore_index, reduction, compute_grad = inputs
    loss, grad_input, row_param_grads = output
    ctx.fused = bool(compute_grad)
    ctx.params = list(params)
    ctx.ignore_index = ignore_index
    ctx.reduction = reduction
    ctx.has_tensor_params = tensor_params is not None
    ctx.save_for_backward(input, target, weight, tensor_params, *((grad_input, row_param_grads) if ctx.fused else ()))
    # The gradients are results, not functions autograd can differentiate (that is `<name>_backward`):
    # differentiating them raises instead of giving zeros.
    ctx.mark_non_differentiable(grad_input, row_param_grads)
    ctx.set_materialize_grads(False)


def _upstream_is_one(grad_loss: torch.Tensor) -> bool:
    # Only where reading the value costs no device sync and no graph break.
    return grad_loss.numel() == 1 and values_are_readable(grad_loss) and bool(grad_loss.item() == 1.0)


def _graph_is_kept() -> bool:
    """Whether the running backward keeps the graph (retain_graph=True), so that this node can run again.
    True where torch cannot say (outside a backward, or a torch without the query): a copy is always safe."""
    query = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if query is None else bool(query())


def _sum_rows(row_param_grads: torch.Tensor, grad_loss: Optional[torch.Tensor], reduction: int) -> torch.Tensor:
    """The tensor params' gradient: the per-row derivatives summed in row order (deterministic),
    scaled by the upstream gradient when it was not already folded in (grad_loss None)."""
    if grad_loss is None:
        return row_param_grads.sum(dim=0)
    if reduction == 0:
        return (row_param_grads * grad_loss.unsqueeze(-1).to(row_param_grads.dtype)).sum(dim=0)
    return row_param_grads.sum(dim=0) * grad_loss.to(row_param_grads.dtype)


def gradients(ctx, name: str, grad_loss: Optional[torch.Tensor]):
    """(d loss/d input, d loss/d tensor_params or None) for the upstream gradient `grad_loss`."""
    if grad_loss is None:
        return None, None
    input, target, weight, tensor_params, *fused_gradients = ctx.saved_tensors
    # With create_graph=True grad mode is on here, and the gradient must be a differentiable function of
    # input, tensor_params and grad_loss: the backward op is (its formula is in double_backward), the buffer is not.
    if ctx.fused and not torch.is_grad_enabled():
        grad_input, row_param_grads = fused_gradients
        param_grad = _sum_rows(row_param_grads, grad_loss, ctx.reduction) if ctx.has_tensor_params else None
        if _upstream_is_one(grad_loss):
            # The fast path hands autograd the buffer itself, which it may then accumulate into: safe only
            # when this node will not run again.
            return (grad_input.clone() if _graph_is_kept() else grad_input), param_grad
        if ctx.reduction == 0:
            return grad_input * grad_loss.unsqueeze(-1).to(grad_input.dtype), param_grad
        return grad_input * grad_loss.to(grad_input.dtype), param_grad
    grad_input, row_param_grads = row_loss_op(name, "backward")(grad_loss, input, target, weight, ctx.params,
                                                        tensor_params, ctx.ignore_index, ctx.reduction)
    param_grad = _sum_rows(row_param_grads, None, ctx.reduction) if ctx.has_tensor_params else None
    return grad_input, param_grad


def _register(name: str) -> None:
    def row_param_grads_like(input, tensor_params, rows):
        count = 0 if tensor_params is None else tensor_params.shape[0]
        return input.new_empty((rows, count), dtype=accumulation_dtype(input.dtype))

    @torch.library.register_fake(f"lossext::{name}_forward")
    def _forward_fake(input, target, weight, params, tensor_params, ignore_index, reduction, compute_grad):
        torch._check(input.dim() == 2, lambda: f"lossext::{name}: input must be 2-D")
        loss = input.new_empty((input.shape[0],) if reduction == 0 else ())
        grad_input = input.new_empty(input.shape) if compute_grad else input.new_empty((0,))
        row_param_grads = row_param_grads_like(input, tensor_params, input.shape[0] if compute_grad else 0)
        return loss, grad_input, row_param_grads

    @torch.library.register_fake(f"lossext::{name}_forward_out")
    def _forward_out_fake(input, target, weight, params, tensor_params, ignore_index, reduction, grad_input):
        return input.new_empty((input.shape[0],) if reduction == 0 else ())

    @torch.library.register_fake(f"lossext::{name}_backward")
    def _backward_fake(grad_output, input, target, weight, params, tensor_params, ignore_index, reduction):
        torch._check(input.dim() == 2, lambda: f"lossext::{name}_backward: input must be 2-D")
        return input.new_empty(input.shape), row_param_grads_like(input, tensor_params, input.shape[0])

    def _backward(ctx, grad_loss, _grad_input_is_not_differentiable, _row_param_grads_are_not_differentiable):
        grad_input, param_grad = gradients(ctx, name, grad_loss)
        return grad_input, None, None, None, param_grad, None, None, None

    torch.library.register_autograd(f"lossext::{name}_forward", _backward, setup_context=save_for_backward)
    register_backward_formula(name)


if _extension.extension_loaded():
    for _name in ROW_LOSS_NAMES:
        _register(_name)
