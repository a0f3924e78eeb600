"""The fused classifier head with its weight split by classes over processes.

Each process holds the rows (V_local, H) of the head's weight for its contiguous range of classes
(and their bias), the whole input (N, H) and the whole target. The rows run in chunks, and no
process ever holds (N, V_local) logits, only one chunk's:

1. per chunk, logits = input_chunk @ weight_local.T + bias_local and their block statistics;
2. the statistics of every row combined over the processes: one all-reduce MAX, one all-reduce SUM
   (lossext.distributed.losses.global_statistics);
3. per chunk again, the logits recomputed, the loss and their gradient g from the combined
   statistics, then d input += g @ weight_local, d weight_local += g.T @ input_chunk, d bias += sum g;
4. d input summed over the processes (each holds the part of its classes): one all-reduce.

For reduction "mean" and "sum" the gradients are finished in the forward and backward only scales
them (no communication); for "none" backward runs step 3 with the upstream gradient and step 4.
"""

from typing import Callable, Optional, Sequence, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .. import _extension
from .._checks import reduction_code
from .._dtypes import accumulation_dtype
from ..losses.binding import bind_loss_arguments, op_arguments, resolve_loss
from ..losses.ops import _upstream_is_one, row_loss_op
from ..losses.row_statistics import statistics_layout
from .losses import class_range, global_statistics, vocab_parallel_loss

__all__ = ["vocab_parallel_linear_loss"]

_CALLER = "lossext.distributed.vocab_parallel_linear_loss"
# The logits of one chunk: at most this many bytes unless chunk_size says otherwise (as lossext.linear_loss).
_DEFAULT_CHUNK_BYTES = 128 << 20


def _chunk_rows(rows: int, classes: int, element_size: int, chunk_size: Optional[int],
                chunk_bytes: Optional[int]) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"{_CALLER}: chunk_size must be positive, got {chunk_size}")
        return chunk_size
    budget = _DEFAULT_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    if budget < 1:
        raise ValueError(f"{_CALLER}: chunk_bytes must be positive, got {budget}")
    return max(1, min(rows, budget // max(1, classes * element_size)))


class _SumOverProcesses(torch.autograd.Function):
    """Identity forward; backward sums the gradient over the processes (each one's part of the
    input's gradient comes from its own classes): the reference path's input."""

    @staticmethod
    def forward(ctx, input, group):
        ctx.group = group
        return input.view_as(input)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class VocabParallelLinearLoss(torch.autograd.Function):
    """apply(input, linear_weight, linear_bias, tensor_params, target, weight, name, params, ignore_index,
    reduction, class_offset, num_classes, chunk_rows, group): input (N, H), linear_weight (V_local, H),
    target (N,) global class indices, reduction an op code."""

    @staticmethod
    def forward(ctx, input, linear_weight, linear_bias, tensor_params, target, weight, name, params, ignore_index,
                reduction, class_offset, num_classes, chunk_rows, group):
        ctx.settings = (name, params, ignore_index, reduction, class_offset, num_classes, chunk_rows, group)
        chunks = [(begin, min(begin + chunk_rows, input.shape[0])) for begin in range(0, input.shape[0], chunk_rows)]
        ctx.chunks = chunks
        statistics, max_other_index = [], None
        for begin, end in chunks:
            logits = F.linear(input[begin:end], linear_weight, linear_bias)
            block, max_other_index = row_loss_op(name, "block_statistics")(
                logits, target[begin:end], weight, params, tensor_params, class_offset, num_classes, ignore_index)
            statistics.append(block)
        if not chunks:
            statistics.append(input.new_empty((0, len(statistics_layout(name)[1])),
                                              dtype=accumulation_dtype(input.dtype)))
        combined = global_statistics(name, torch.cat(statistics), tensor_params, group)
        ctx.max_other_index = max_other_index
        # The mean's denominator over every row (each chunk's call would take its own rows'):
        # the target weights of the rows that are not ignored.
        target_weight = combined[:, statistics_layout(name)[1].index("target_weight")]
        denominator = torch.where(target != ignore_index, target_weight, 0).sum(dtype=torch.float64)
        ctx.denominator = denominator
        wanted = [ctx.needs_input_grad[i] for i in range(4)]
        ctx.fused = reduction != 0 and any(wanted)
        loss, gradients = VocabParallelLinearLoss._second_pass(
            ctx, input, linear_weight, linear_bias, tensor_params, target, weight, combined,
            wanted if ctx.fused else [False] * 4, None)
        if ctx.fused:
            ctx.save_for_backward(*gradients)
        else:
            ctx.save_for_backward(input, linear_weight, linear_bias, tensor_params, target, weight, combined)
        ctx.set_materialize_grads(False)
        return loss

    @staticmethod
    def _second_pass(ctx, input, linear_weight, linear_bias, tensor_params, target, weight, combined, wanted,
                     grad_output):
        """(loss, [d input, d linear_weight, d linear_bias, d tensor_params]) from the combined statistics,
        the logits recomputed chunk by chunk; d input summed over the processes."""
        name, params, ignore_index, reduction, class_offset, num_classes, _, group = ctx.settings
        acc = accumulation_dtype(input.dtype)
        compute_grad = any(wanted)
        grad_input = torch.zeros(input.shape, dtype=acc, device=input.device) if wanted[0] else None
        grad_weight = torch.zeros(linear_weight.shape, dtype=acc, device=input.device) if wanted[1] else None
        grad_bias = (torch.zeros(linear_bias.shape, dtype=acc, device=input.device)
                     if wanted[2] and linear_bias is not None else None)
        grad_params = torch.zeros_like(tensor_params) if wanted[3] and tensor_params is not None else None
        values = []
        for begin, end in ctx.chunks:
            rows = input[begin:end]
            logits = F.linear(rows, linear_weight, linear_bias)
            upstream = None
            if grad_output is not None:
                upstream = grad_output[begin:end] if reduction == 0 else grad_output
            value, grad_logits, row_param_grads = row_loss_op(name, "block_loss_and_gradient")(
                logits, target[begin:end], weight, params, tensor_params, combined[begin:end], ctx.max_other_index,
                class_offset, num_classes, ignore_index, reduction, ctx.denominator, upstream, compute_grad)
            values.append(value.to(acc) if reduction != 0 else value)
            if not compute_grad:
                continue
            if grad_input is not None:
                grad_input[begin:end] = (grad_logits @ linear_weight).to(acc)
            if grad_weight is not None:
                grad_weight += (grad_logits.t() @ rows).to(acc)
            if grad_bias is not None:
                grad_bias += grad_logits.sum(dim=0, dtype=acc)
            if grad_params is not None:
                grad_params += row_param_grads.sum(dim=0)
        if reduction == 0:
            loss = torch.cat(values) if values else input.new_empty((0,))
        else:
            total = torch.stack(values).sum() if values else input.new_zeros((), dtype=acc)
            if reduction == reduction_code("mean") and not values:
                total = total / ctx.denominator.to(acc)  # 0/0: NaN, as F.cross_entropy of no rows
            loss = total.to(input.dtype)
        if grad_input is not None:
            dist.all_reduce(grad_input, op=dist.ReduceOp.SUM, group=group)
        gradients = [grad_input, grad_weight, grad_bias, grad_params]
        dtypes = [input.dtype, linear_weight.dtype, None if linear_bias is None else linear_bias.dtype, None]
        return loss, [None if g is None else (g if dtype is None else g.to(dtype)) for g, dtype in zip(gradients, dtypes)]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        nothing = (None,) * 10
        if grad_loss is None:
            return (None,) * 4 + nothing
        if ctx.fused:
            gradients = list(ctx.saved_tensors)
            if not _upstream_is_one(grad_loss):
                gradients = [None if g is None else g * grad_loss.to(g.dtype) for g in gradients]
        else:
            input, linear_weight, linear_bias, tensor_params, target, weight, combined = ctx.saved_tensors
            wanted = [ctx.needs_input_grad[i] for i in range(4)]
            _, gradients = VocabParallelLinearLoss._second_pass(
                ctx, input, linear_weight, linear_bias, tensor_params, target, weight, combined, wanted, grad_loss)
        return tuple(gradients) + nothing


def vocab_parallel_linear_loss(loss: Union[str, Callable], input: torch.Tensor, linear_weight: torch.Tensor,
                               target: torch.Tensor, *, linear_bias: Optional[torch.Tensor] = None,
                               group: Optional[dist.ProcessGroup] = None,
                               class_sizes: Optional[Sequence[int]] = None, chunk_size: Optional[int] = None,
                               chunk_bytes: Optional[int] = None, **loss_kwargs) -> torch.Tensor:
    """`loss` of the logits input @ W.T + b, W's rows (classes) split over the processes of `group`,
    without materialising them: lossext.linear_loss with linear_weight (V_local, H) and linear_bias
    (V_local,) this process's classes (a contiguous range, in rank order), the input (..., H) and the
    class-index target whole on every process, weight (a loss_kwarg) this process's class weights.
    Returns the global loss on every process; gradients flow to input (the whole input's gradient,
    summed over the processes), linear_weight and linear_bias (this process's rows) and the
    two-scale loss's tensor scales. chunk_size / chunk_bytes: rows per chunk, or the logits buffer's
    size (default 128 MiB). Two all-reduces of O(N) statistics and one of the input's gradient per call.
    """
    name, function = resolve_loss(loss, _CALLER)
    args = bind_loss_arguments(name, function, loss_kwargs, _CALLER)
    if linear_weight.dim() != 2 or linear_weight.shape[1] != input.shape[-1]:
        raise RuntimeError(f"{_CALLER}: linear_weight must have shape (V_local, H) with H = {input.shape[-1]} (the "
                           f"input's last dimension), got {tuple(linear_weight.shape)}")
    if target.is_floating_point():
        raise NotImplementedError(f"{_CALLER}: class-probability targets are not supported; pass class indices")
    if tuple(target.shape) != tuple(input.shape[:-1]):
        raise ValueError(f"{_CALLER}: Expected target of shape {list(input.shape[:-1])} (the input's without H), "
                         f"got {list(target.shape)}")
    weight = args.get("weight")
    if not _extension.use_extension(input.device) or (weight is not None and weight.requires_grad):
        logits = F.linear(_SumOverProcesses.apply(input, group), linear_weight, linear_bias)
        return vocab_parallel_loss(name, logits, target, group=group, class_sizes=class_sizes, **args)
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != linear_weight.shape[0]):
        raise RuntimeError(f"{_CALLER}: weight must hold this process's {linear_weight.shape[0]} class weights, got "
                           f"shape {list(weight.shape)}")
    class_offset, num_classes = class_range(linear_weight.shape[0], group, class_sizes, input.device)
    op_name, params, tensor_params = op_arguments(name, function, args, input, False)
    reduction = reduction_code(args["reduction"])
    rows = input.reshape(-1, input.shape[-1])
    chunk_rows = _chunk_rows(rows.shape[0], linear_weight.shape[0], input.element_size(), chunk_size, chunk_bytes)
    loss = VocabParallelLinearLoss.apply(rows, linear_weight, linear_bias, tensor_params, target.reshape(-1).long(),
                                         weight, op_name, params, args["ignore_index"], reduction, class_offset,
                                         num_classes, chunk_rows, group)
    return loss.reshape(input.shape[:-1]) if reduction == 0 else loss
