"""Fake kernels of the row losses' block ops, and a loss computed block by block.

A row's classes split into blocks of columns; for each row loss `<name>` (schemas in
csrc/ops/schemas.cpp, packed layout in csrc/losses/row_statistics.h):

* `<name>_block_statistics(input, target, weight, params, tensor_params, class_offset, num_classes,
  ignore_index) -> (statistics, max_other_index)`: the statistics of one block (input (N, width) holding
  classes [class_offset, class_offset + width)), a (N, F) tensor in the accumulation dtype whose first
  M fields combine by a max and the rest by a sum once rebased (`statistics_layout(name)` gives M and
  the names), and the largest other logit's class for losses that need it.
* `<name>_combine_statistics(statistics, max_other_index, tensor_params)`: the statistics of the union
  of any number of blocks, in any order.
* `<name>_rebase_statistics(statistics, max_statistics, tensor_params)`: a block's statistics with
  its SUM part moved to the combined MAX part, so that the blocks' SUM parts add up (one MAX and one
  SUM reduction between processes).
* `<name>_block_loss_and_gradient(input, target, weight, params, tensor_params, statistics,
  max_other_index, class_offset, num_classes, ignore_index, reduction, target_weight_sum, grad_output,
  compute_grad) -> (loss, grad_input, row_param_grads)`: the loss and one block's gradient from the
  combined statistics.

`blockwise_row_loss` runs a loss through them, for tests and as the recipe for callers.
"""

import functools
from typing import List, Optional, Sequence, Tuple

import torch

from .. import _extension
from .ops import ROW_LOSS_NAMES, row_loss_op


def _accumulation_dtype(input: torch.Tensor) -> torch.dtype:
    return torch.float64 if input.dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=None)
def statistics_layout(name: str) -> Tuple[int, Tuple[str, ...], bool]:
    """(M, names, with_index): the number of MAX-combined fields, first in a packed statistics row, the
    name of every field in packed order (csrc/losses/row_statistics.h), and whether the loss's statistics
    come with a max_other_index tensor (N,) (else it is (0,))."""
    max_fields, names, with_index = getattr(torch.ops.lossext, f"{name}_statistics_layout")()
    return max_fields, tuple(names), with_index


def _register(name: str) -> None:
    _, names, with_index = statistics_layout(name)
    fields = len(names)

    @torch.library.register_fake(f"lossext::{name}_block_statistics")
    def _statistics_fake(input, target, weight, params, tensor_params, class_offset, num_classes, ignore_index):
        torch._check(input.dim() == 2, lambda: f"lossext::{name}_block_statistics: input must be 2-D")
        rows = input.shape[0]
        statistics = input.new_empty((rows, fields), dtype=_accumulation_dtype(input))
        return statistics, input.new_empty((rows if with_index else 0,), dtype=torch.int64)

    @torch.library.register_fake(f"lossext::{name}_combine_statistics")
    def _combine_fake(statistics, max_other_index, tensor_params):
        torch._check(len(statistics) > 0, lambda: f"lossext::{name}_combine_statistics: no statistics")
        return torch.empty_like(statistics[0]), torch.empty_like(max_other_index[0])

    @torch.library.register_fake(f"lossext::{name}_rebase_statistics")
    def _rebase_fake(statistics, max_statistics, tensor_params):
        return torch.empty_like(statistics)

    @torch.library.register_fake(f"lossext::{name}_block_loss_and_gradient")
    def _loss_and_gradient_fake(input, target, weight, params, tensor_params, statistics, max_other_index,
                                class_offset, num_classes, ignore_index, reduction, target_weight_sum,
                                grad_output, compute_grad):
        torch._check(input.dim() == 2, lambda: f"lossext::{name}_block_loss_and_gradient: input must be 2-D")
        rows = input.shape[0]
        loss = input.new_empty((rows,) if reduction == 0 else ())
        grad_input = input.new_empty(input.shape) if compute_grad else input.new_empty((0,))
        count = 0 if tensor_params is None else tensor_params.shape[0]
        row_param_grads = input.new_empty((rows if compute_grad else 0, count), dtype=_accumulation_dtype(input))
        return loss, grad_input, row_param_grads


def blockwise_row_loss(
    name: str,
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    params: Sequence[float],
    tensor_params: Optional[torch.Tensor],
    ignore_index: int,
    reduction: int,
    boundaries: Sequence[int],
    order: Optional[Sequence[int]] = None,
    combine: str = "combine",
    grad_output: Optional[torch.Tensor] = None,
    target_weight_sum: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """The `name` row loss of (N, C) logits from blocks of its classes: (loss, d loss/d input, d loss/d tensor_params).

    boundaries: 0 = b_0 < b_1 < ... < b_k = C, block i holding classes [b_i, b_{i+1}). order: the order in
    which the blocks' statistics are combined (default: as given). combine: "combine" (one
    `<name>_combine_statistics` of all blocks), "pairwise" (one block at a time) or "rebase" (as between
    processes: an elementwise max of the MAX parts, each block rebased to it, a sum of the SUM parts).
    grad_output: the upstream gradient (None: 1). A dense (probability) target is split with the logits.
    """
    rows, num_classes = input.shape
    dense = target.dim() == 2
    blocks = list(zip(boundaries[:-1], boundaries[1:]))
    order = list(range(len(blocks))) if order is None else list(order)
    params = [float(p) for p in params]

    def block_arguments(begin: int, end: int):
        block_target = target[:, begin:end] if dense else target
        block_weight = None if weight is None else weight[begin:end]
        return input[:, begin:end], block_target, block_weight

    statistics: List[torch.Tensor] = []
    indices: List[torch.Tensor] = []
    for begin, end in blocks:
        block_input, block_target, block_weight = block_arguments(begin, end)
        s, i = row_loss_op(name, "block_statistics")(block_input, block_target, block_weight, params, tensor_params,
                                                   begin, num_classes, ignore_index)
        statistics.append(s)
        indices.append(i)
    statistics = [statistics[b] for b in order]
    indices = [indices[b] for b in order]

    combine_op = row_loss_op(name, "combine_statistics")
    if combine == "combine":
        combined, combined_index = combine_op(statistics, indices, tensor_params)
    elif combine == "pairwise":
        combined, combined_index = statistics[0], indices[0]
        for s, i in zip(statistics[1:], indices[1:]):
            combined, combined_index = combine_op([combined, s], [combined_index, i], tensor_params)
    elif combine == "rebase":
        max_fields = statistics_layout(name)[0]
        max_part = torch.stack([s[:, :max_fields] for s in statistics]).amax(dim=0)
        rebased = [row_loss_op(name, "rebase_statistics")(s, max_part, tensor_params) for s in statistics]
        sum_part = torch.stack([r[:, max_fields:] for r in rebased]).sum(dim=0)
        combined = torch.cat([max_part, sum_part], dim=1)
        # The max-other index travels apart (csrc/losses/row_statistics.h).
        combined_index = combine_op(statistics, indices, tensor_params)[1]
    else:
        raise ValueError(f"combine must be 'combine', 'pairwise' or 'rebase', got {combine!r}")

    loss = None
    gradients = []
    row_param_grads = None
    for begin, end in blocks:
        block_input, block_target, block_weight = block_arguments(begin, end)
        loss, grad, row_param_grads = row_loss_op(name, "block_loss_and_gradient")(
            block_input, block_target, block_weight, params, tensor_params, combined, combined_index, begin,
            num_classes, ignore_index, reduction, target_weight_sum, grad_output, True)
        gradients.append(grad)
    param_grad = None if tensor_params is None else row_param_grads.sum(dim=0)
    return loss, torch.cat(gradients, dim=1), param_grad


if _extension.extension_loaded():
    for _name in ROW_LOSS_NAMES:
        _register(_name)
