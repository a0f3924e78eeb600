"""Vocabulary-parallel losses: every lossext loss of logits whose classes are split over processes.

Each process of a torch.distributed group holds a contiguous range of the classes, in rank order,
of every row: its slice (N, V_local) (or (N, V_local, d1, ...)) of the logits, and the whole
class-index target. Every lossext loss reduces a row to a few statistics (csrc/losses/row_statistics.h:
the row max, the exp sums, the target logit, ...), so a sharded row needs, whatever V:

1. each process's statistics of its slice (`<loss>_block_statistics`),
2. one all-reduce MAX of the packed MAX part (row max, minus the row min, the largest other logit:
   the fields the loss needs),
3. each process's SUM part rebased to that maximum (`<loss>_rebase_statistics`, local),
4. one all-reduce SUM of the packed SUM part (exp sums, label smoothing's weighted logit sum and
   class-weight total, an elementwise loss's sum, the target logit and weight),
5. the loss and the slice's gradient from the combined statistics (`<loss>_block_loss_and_gradient`).

The value is the global loss on every process; backward gives each process the gradient of its own
slice and the full gradient of the loss's learnable scalars (two-scale r1, r2, R), with no
communication: in the fused gradient mode the forward computed it, otherwise it is recomputed from
the saved combined statistics. Label smoothing and the mean's weights are over the global classes.
"""

from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist

from .. import _extension
from .._checks import canonicalize
from ..losses import ops, reference
from ..losses.binding import bind_loss_arguments, op_arguments, resolve_loss
from ..losses.ops import row_loss_op
from ..losses.row_statistics import statistics_layout

__all__ = ["class_range", "exchange_class_sizes", "global_statistics", "vocab_parallel_loss"]

_CALLER = "lossext.distributed"


def exchange_class_sizes(local_classes: int, group: Optional[dist.ProcessGroup] = None,
                         device: Union[torch.device, str] = "cpu") -> List[int]:
    """Every process's number of classes, in rank order: one all_gather of one integer per process, on
    `device` (a CUDA device for NCCL)."""
    mine = torch.tensor([local_classes], dtype=torch.int64, device=device)
    gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, mine, group=group)
    return [int(size) for size in torch.cat(gathered).tolist()]


def class_range(local_classes: int, group: Optional[dist.ProcessGroup] = None,
                class_sizes: Optional[Sequence[int]] = None,
                device: Union[torch.device, str] = "cpu") -> Tuple[int, int]:
    """(first class of this process's slice, number of classes of the whole row).

    class_sizes: every process's number of classes in rank order; None exchanges them
    (exchange_class_sizes).
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if class_sizes is None:
        sizes = exchange_class_sizes(local_classes, group, device)
    else:
        sizes = [int(size) for size in class_sizes]
        if len(sizes) != world:
            raise ValueError(f"{_CALLER}: class_sizes must give one size per process of the group ({world}), "
                             f"got {len(sizes)}")
        if sizes[rank] != local_classes:
            raise ValueError(f"{_CALLER}: class_sizes[{rank}] = {sizes[rank]} must be this process's number of "
                             f"classes (the input's class dimension, {local_classes})")
    if min(sizes) < 1:
        raise ValueError(f"{_CALLER}: every process must hold at least one class, got class sizes {sizes}")
    return sum(sizes[:rank]), sum(sizes)


def global_statistics(name: str, statistics: torch.Tensor, tensor_params: Optional[torch.Tensor],
                      group: Optional[dist.ProcessGroup] = None) -> torch.Tensor:
    """The statistics of the whole rows from every process's `<name>_block_statistics` of its slice:
    one all-reduce MAX of the MAX part (none for a loss without one), the SUM part rebased to it, one
    all-reduce SUM of the SUM part. Collectives on the group's default stream, no host sync."""
    max_fields, _, with_index = statistics_layout(name)
    if with_index:
        # No shipped loss has one; its index would travel as an order-preserving int64 key of
        # (value, -index) in the MAX reduction (csrc/losses/row_statistics.h).
        raise NotImplementedError(f"{_CALLER}: {name} needs its largest other logit's class, which is not sharded")
    if max_fields == 0:
        dist.all_reduce(statistics, op=dist.ReduceOp.SUM, group=group)
        return statistics
    max_part = statistics[:, :max_fields].contiguous()
    dist.all_reduce(max_part, op=dist.ReduceOp.MAX, group=group)
    rebased = row_loss_op(name, "rebase_statistics")(statistics, max_part, tensor_params)
    sum_part = rebased[:, max_fields:].contiguous()
    dist.all_reduce(sum_part, op=dist.ReduceOp.SUM, group=group)
    return torch.cat([max_part, sum_part], dim=1)


class VocabParallelRowLoss(torch.autograd.Function):
    """A row loss of (N, V_local) slices of (N, V) rows; apply(input, tensor_params, target, weight, name,
    params, ignore_index, reduction, class_offset, num_classes, group), reduction as an op code."""

    @staticmethod
    def forward(ctx, input, tensor_params, target, weight, name, params, ignore_index, reduction, class_offset,
                num_classes, group):
        statistics, max_other_index = row_loss_op(name, "block_statistics")(
            input, target, weight, params, tensor_params, class_offset, num_classes, ignore_index)
        combined = global_statistics(name, statistics, tensor_params, group)
        wants_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        ctx.fused = wants_grad and ops.gradient_mode(input.device) == "fused"
        loss, grad_input, row_param_grads = row_loss_op(name, "block_loss_and_gradient")(
            input, target, weight, params, tensor_params, combined, max_other_index, class_offset, num_classes,
            ignore_index, reduction, None, None, ctx.fused)
        ctx.name, ctx.params, ctx.ignore_index, ctx.reduction = name, params, ignore_index, reduction
        ctx.class_offset, ctx.num_classes = class_offset, num_classes
        ctx.has_tensor_params = tensor_params is not None
        if ctx.fused:
            ctx.save_for_backward(grad_input, row_param_grads)
        else:
            ctx.save_for_backward(input, target, weight, tensor_params, combined, max_other_index)
        ctx.set_materialize_grads(False)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        if grad_loss is None:
            return (None,) * 11
        if ctx.fused:
            grad_input, row_param_grads = ctx.saved_tensors
            param_grad = ops._sum_rows(row_param_grads, grad_loss, ctx.reduction) if ctx.has_tensor_params else None
            if ops._upstream_is_one(grad_loss):
                grad_input = grad_input.clone() if ops._graph_is_kept() else grad_input
            elif ctx.reduction == 0:
                grad_input = grad_input * grad_loss.unsqueeze(-1).to(grad_input.dtype)
            else:
                grad_input = grad_input * grad_loss.to(grad_input.dtype)
        else:
            input, target, weight, tensor_params, combined, max_other_index = ctx.saved_tensors
            _, grad_input, row_param_grads = row_loss_op(ctx.name, "block_loss_and_gradient")(
                input, target, weight, ctx.params, tensor_params, combined, max_other_index, ctx.class_offset,
                ctx.num_classes, ctx.ignore_index, ctx.reduction, None, grad_loss, True)
            param_grad = row_param_grads.sum(dim=0) if ctx.has_tensor_params else None
        return (grad_input, param_grad) + (None,) * 9


def _gather_classes(local: torch.Tensor, group: Optional[dist.ProcessGroup]) -> torch.Tensor:
    """The whole tensor from every process's slice of its last (class) dimension: this process's slice
    as it is (gradients flow to it), the others' as constants."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    width = torch.tensor([local.shape[-1]], dtype=torch.int64, device=local.device)
    widths = [torch.empty_like(width) for _ in range(world)]
    dist.all_gather(widths, width, group=group)
    widths = torch.cat(widths).tolist()
    padded = torch.nn.functional.pad(local.detach(), (0, max(widths) - local.shape[-1])).contiguous()
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded, group=group)
    slices = [piece[..., :w] for piece, w in zip(pieces, widths)]
    slices[rank] = local
    return torch.cat(slices, dim=-1)


def _gathered_reference(name: str, args: dict, rows: torch.Tensor, target: torch.Tensor, probabilities: bool,
                        group: Optional[dist.ProcessGroup]) -> torch.Tensor:
    """The fallback where no kernel runs (no extension for the device, or a class weight or soft target
    that requires grad): the reference of the whole rows, gathered. Every process computes the same
    global loss, so each one's gradient is the whole rows' gradient at its own slice: the other
    processes' slices enter as constants, and backward communicates nothing."""
    whole = dict(args)
    if args.get("weight") is not None:
        whole["weight"] = _gather_classes(args["weight"], group)
    whole_target = _gather_classes(target, group) if probabilities else target
    return getattr(reference, name)(_gather_classes(rows, group), whole_target, **whole)


def vocab_parallel_loss(loss: Union[str, Callable], input: torch.Tensor, target: torch.Tensor, *,
                        group: Optional[dist.ProcessGroup] = None, class_sizes: Optional[Sequence[int]] = None,
                        **loss_kwargs) -> torch.Tensor:
    """`loss` (a lossext loss's name or function) of logits whose classes are split over the processes
    of `group` (None: the default group), each holding a contiguous range of classes in rank order.

    input: this process's slice, (V_local,), (N, V_local) or (N, V_local, d1, ..., dk); target: the whole
    class-index target (the same on every process), or for cross_entropy this process's slice of class
    probabilities; class_sizes: every process's V_local (None: exchanged, one all_gather); loss_kwargs:
    the loss's own arguments, `weight` being this process's slice of the class weights (V_local,).
    Returns the global loss (the same on every process); backward gives this process's slice its
    gradient. See the module doc for the two all-reduces it costs.
    """
    name, function = resolve_loss(loss, _CALLER)
    args = bind_loss_arguments(name, function, loss_kwargs, _CALLER)
    weight, ignore_index = args.get("weight"), args["ignore_index"]
    canonical = canonicalize(name, input, target, weight, ignore_index, args["reduction"],
                             allow_probabilities=name == "cross_entropy")
    class_offset, num_classes = class_range(canonical.input.shape[1], group, class_sizes, input.device)
    kernel_runs = _extension.use_extension(input.device) and not any(
        t is not None and t.requires_grad for t in (weight, canonical.target if canonical.probabilities else None))
    if not kernel_runs:
        value = _gathered_reference(name, args, canonical.input, canonical.target, canonical.probabilities, group)
    else:
        op_name, params, tensor_params = op_arguments(name, function, args, input, canonical.probabilities)
        value = VocabParallelRowLoss.apply(canonical.input, tensor_params, canonical.target, weight, op_name, params,
                                           ignore_index, canonical.reduction, class_offset, num_classes, group)
    return value.reshape(canonical.batch_shape) if canonical.reduction == 0 else value
