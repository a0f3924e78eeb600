"""Argument checks and the (N, C) view shared by the kernels and the reference.

Every public loss goes through `canonicalize`, so both backends accept and
reject the same calls, with the exception types F.cross_entropy uses.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
_INDEX_DTYPES = (torch.int64, torch.int32, torch.uint8)


def reduction_code(reduction: str) -> int:
    """The int the ops take for a torch-style reduction string."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return _REDUCTIONS[reduction]


@dataclass
class Canonical:
    """A loss call reshaped for the row kernels."""

    input: torch.Tensor  # (N, C)
    target: torch.Tensor  # (N,) class indices, or (N, C) probabilities
    weight: Optional[torch.Tensor]
    reduction: int
    batch_shape: Tuple[int, ...]  # shape of the unreduced loss
    probabilities: bool


def is_probability_target(input: torch.Tensor, target: torch.Tensor) -> bool:
    return input.dim() >= 1 and target.shape == input.shape


def canonicalize(
    name: str,
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    ignore_index: int,
    reduction: str,
    allow_probabilities: bool = False,
) -> Canonical:
    """Check a call the way F.cross_entropy does and flatten it to (N, C) rows.

    Inputs may be (C,), (N, C) or (N, C, d1, ..., dk); the class dimension is 1
    (0 for a 1-D input). K-dimensional inputs are moved to (N * d1 * ... * dk, C).
    """
    red = reduction_code(reduction)
    if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{name}: input and target must be tensors")
    if input.dim() == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-dim tensor")
    if not input.is_floating_point():
        raise NotImplementedError(f"{name}: input must be a floating-point tensor, got {input.dtype}")
    if target.device != input.device:
        raise RuntimeError(f"{name}: target must be on the input's device ({input.device}), got {target.device}")
    class_dim = 0 if input.dim() == 1 else 1
    num_classes = input.shape[class_dim]

    if weight is not None:
        if weight.device != input.device:
            raise RuntimeError(f"{name}: weight must be on the input's device ({input.device}), got {weight.device}")
        if weight.dim() != 1 or weight.numel() != num_classes:
            raise RuntimeError(
                f"{name}: weight tensor should be defined either for all {num_classes} classes or no classes "
                f"but got weight tensor of shape: {list(weight.shape)}"
            )
        if weight.dtype != input.dtype:
            raise RuntimeError(f"{name}: weight must have the input's dtype ({input.dtype}), got {weight.dtype}")

    probabilities = allow_probabilities and is_probability_target(input, target)
    if probabilities:
        if not target.is_floating_point():
            raise RuntimeError(
                f"{name}: Expected floating point type for target with class probabilities, got {target.dtype}"
            )
        if ignore_index >= 0:
            raise RuntimeError(f"{name}: ignore_index is not supported for floating point target")
    else:
        if target.dtype not in _INDEX_DTYPES:
            raise RuntimeError(
                f"{name}: target must hold class indices as int64, int32 or uint8 "
                f"(or class probabilities of the input's shape), got {target.dtype}"
            )
        expected = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1 :])
        if tuple(target.shape) != expected:
            if input.dim() == 2 and target.dim() == 1:
                raise ValueError(
                    f"{name}: Expected input batch_size ({input.shape[0]}) to match target batch_size "
                    f"({target.shape[0]})."
                )
            raise RuntimeError(f"{name}: Expected target size {list(expected)}, got {list(target.shape)}")

    if input.dim() == 1:
        rows = input.unsqueeze(0)
        flat_target = target.unsqueeze(0)
        batch_shape: Tuple[int, ...] = ()
    elif input.dim() == 2:
        rows, flat_target = input, target
        batch_shape = (input.shape[0],)
    else:
        rows = input.movedim(1, -1).reshape(-1, num_classes)
        flat_target = target.movedim(1, -1).reshape(-1, num_classes) if probabilities else target.reshape(-1)
        batch_shape = (input.shape[0],) + tuple(input.shape[2:])
    return Canonical(rows, flat_target, weight, red, batch_shape, probabilities)


def check_target_range(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """IndexError for a class index outside [0, C), as F.nll_loss; ignored rows are skipped."""
    valid = target[target.long() != ignore_index].long()
    if valid.numel() and (bool((valid < 0).any()) or bool((valid >= num_classes).any())):
        bad = valid[(valid < 0) | (valid >= num_classes)][0].item()
        raise IndexError(f"Target {bad} is out of bounds.")
