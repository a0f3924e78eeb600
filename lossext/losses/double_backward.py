"""Double backward of the row losses: an autograd formula for every `<name>_backward` op.

The first-order gradient always comes from a kernel: the fused forward's buffer, or
`<name>_backward`. When the outer backward builds a graph (create_graph=True, as gradient
penalties and meta-learning do), the forward op's formula calls `<name>_backward` (lossext.losses.ops),
and the formula registered here differentiates it: `<name>_backward` computes

    G(u, x, theta) = (u * d loss(x, theta) / dx,  u * d loss(x, theta) / d theta_i per row i)

(u the upstream gradient, theta the tensor params), and its vector-Jacobian product with the
cotangents (v_x, v_theta) is that of the same G written with the pure-PyTorch reference and
differentiated by autograd (every reference is a composition of twice-differentiable PyTorch ops).
So values stay the kernels', second derivatives are the reference's, and the products are
themselves differentiable when the outer backward asks for a graph again (third order).
"""

from typing import Callable, List, Optional, Sequence, Tuple

import torch

from .._checks import _REDUCTIONS
from .._dtypes import accumulation_dtype
from . import reference

_REDUCTION_NAMES = {code: name for name, code in _REDUCTIONS.items()}


def reference_row_loss(name: str, input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                       params: Sequence[float], row_tensor_params: Optional[torch.Tensor], ignore_index: int,
                       reduction: int) -> torch.Tensor:
    """The reference of the `name` op on (N, C) rows, with the op's arguments; row_tensor_params is
    (N, P): each row's own copy of the tensor params, so that autograd gives per-row derivatives."""
    options = dict(weight=weight, ignore_index=ignore_index, reduction=_REDUCTION_NAMES[reduction])
    if name in ("cross_entropy", "cross_entropy_probabilities"):  # the reference tells the targets apart by shape
        return reference.cross_entropy(input, target, label_smoothing=params[0], z_loss=params[1],
                                       logit_softcap=params[2] or None, **options)
    if name == "two_scale_cross_entropy":
        r1, r2, norm = row_tensor_params.unbind(1)
        return reference.two_scale_cross_entropy(input, target, r1, r2, params[0], norm, **options)
    return getattr(reference, name)(input, target, *params, **options)


def reference_gradients(name: str, grad_output: torch.Tensor, input: torch.Tensor, target: torch.Tensor,
                        weight: Optional[torch.Tensor], params: Sequence[float],
                        tensor_params: Optional[torch.Tensor], ignore_index: int,
                        reduction: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """What `<name>_backward` returns, (grad_input, row_param_grads), from the reference, as a
    differentiable function of grad_output, input and tensor_params (which must require grad)."""
    rows = input.shape[0]
    row_tensor_params = None if tensor_params is None else tensor_params.unsqueeze(0).expand(rows, -1)
    loss = reference_row_loss(name, input, target, weight, params, row_tensor_params, ignore_index, reduction)
    wrt = [input] + ([] if row_tensor_params is None else [row_tensor_params])
    grads = torch.autograd.grad(loss, wrt, grad_output.reshape(loss.shape).to(loss.dtype), create_graph=True,
                                materialize_grads=True)
    if row_tensor_params is None:
        return grads[0], input.new_zeros((rows, 0), dtype=accumulation_dtype(input.dtype))
    return grads[0], grads[1]


def vector_jacobian_product(function: Callable[..., Sequence[torch.Tensor]],
                            primals: Sequence[Optional[torch.Tensor]], cotangents: Sequence[Optional[torch.Tensor]],
                            needs_grad: Sequence[bool]) -> List[Optional[torch.Tensor]]:
    """sum_k <cotangents[k], d function(*primals)[k] / d primals[i]> for each primal i that needs it
    (None for the others), itself differentiable when grad mode is on (the outer create_graph=True).

    A primal that requires grad is used as it is, so that a graph built here continues into its history.
    """
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaves = [p if p is None or p.requires_grad else p.detach().requires_grad_() for p in primals]
        outputs = function(*leaves)
        wanted = [i for i, (leaf, needed) in enumerate(zip(leaves, needs_grad)) if needed and leaf is not None]
        pairs = [(output, cotangent) for output, cotangent in zip(outputs, cotangents)
                 if cotangent is not None and output.requires_grad]
        result: List[Optional[torch.Tensor]] = [None] * len(primals)
        if wanted and pairs:
            grads = torch.autograd.grad([output for output, _ in pairs], [leaves[i] for i in wanted],
                                        [cotangent for _, cotangent in pairs], create_graph=create_graph,
                                        materialize_grads=True)
            for i, grad in zip(wanted, grads):
                result[i] = grad
    return result


def register_backward_formula(name: str) -> None:
    """The autograd formula of `lossext::<name>_backward` (see the module docstring)."""

    def setup_context(ctx, inputs, output) -> None:
        grad_output, input, target, weight, params, tensor_params, ignore_index, reduction = inputs
        ctx.save_for_backward(grad_output, input, target, weight, tensor_params)
        ctx.params, ctx.ignore_index, ctx.reduction = list(params), ignore_index, reduction

    def backward(ctx, grad_of_grad_input, grad_of_row_param_grads):
        grad_output, input, target, weight, tensor_params = ctx.saved_tensors

        def first_order(upstream, logits, scalars):
            return reference_gradients(name, upstream, logits, target, weight, ctx.params, scalars,
                                       ctx.ignore_index, ctx.reduction)

        needs = ctx.needs_input_grad
        grad_upstream, grad_input, grad_tensor_params = vector_jacobian_product(
            first_order, (grad_output, input, tensor_params), (grad_of_grad_input, grad_of_row_param_grads),
            (needs[0], needs[1], needs[5]))
        return grad_upstream, grad_input, None, None, None, grad_tensor_params, None, None

    torch.library.register_autograd(f"lossext::{name}_backward", backward, setup_context=setup_context)
