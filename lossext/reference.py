"""Pure-PyTorch references: the ground truth in tests and the fallback when lossext._C is missing.

Each function takes the same arguments as its fused counterpart and checks them
the same way (lossext._canonical), then computes in float32 (float64 for
float64 inputs) with plain tensor operations, written for clarity, not speed.
"""

from typing import Callable, Optional

import torch

from ._canonical import Canonical, canonicalize, check_target_range

__all__ = ["cross_entropy"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float32, float16 and bfloat16 are computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_label_smoothing(label_smoothing: float) -> None:
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")


def reduce_rows(rows: torch.Tensor, denominator: torch.Tensor, canonical: Canonical, dtype: torch.dtype):
    """Apply the reduction to per-row losses that already carry their class weight w_t."""
    if canonical.reduction == 0:
        return rows.reshape(canonical.batch_shape).to(dtype)
    total = rows.sum()
    if canonical.reduction == 1:
        total = total / denominator  # 0 / 0 = NaN for an empty or all-ignored batch, as in PyTorch
    return total.to(dtype)


def class_index_loss(
    name: str,
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    ignore_index: int,
    reduction: str,
    per_row: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """A loss with class-index targets, from its per-row formula.

    per_row(x, t, w_t) gets the (N, C) logits in the compute dtype, (N,) int64
    targets (ignored rows hold class 0) and the (N,) class weights of the
    targets, and returns the (N,) weighted losses (w_t times the row's loss for
    most losses). Ignored rows count zero, and the mean divides by the sum of
    w_t over the rows that are not ignored, as F.cross_entropy does.
    """
    canonical = canonicalize(name, input, target, weight, ignore_index, reduction)
    x = canonical.input.to(compute_dtype(input.dtype))
    t = canonical.target.long()
    check_target_range(t, x.shape[1], ignore_index)
    valid = t != ignore_index
    safe_target = torch.where(valid, t, torch.zeros_like(t))
    target_weight = valid.to(x.dtype)
    if weight is not None:
        target_weight = target_weight * weight.to(x.dtype)[safe_target]
    rows = torch.where(valid, per_row(x, safe_target, target_weight), torch.zeros((), dtype=x.dtype))
    return reduce_rows(rows, target_weight.sum(), canonical, input.dtype)


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy as torch.nn.functional.cross_entropy defines it, from logsumexp.

    Per row, with lse = log sum_j exp(o_j) and smoothing eps over C classes:
    (1 - eps) w_t (lse - o_t) + eps / C * sum_j w_j (lse - o_j) for class indices;
    sum_j w_j q'_j (lse - o_j) with q' = (1 - eps) q + eps / C for class probabilities q.
    """
    check_label_smoothing(label_smoothing)
    canonical = canonicalize("cross_entropy", input, target, weight, ignore_index, reduction,
                             allow_probabilities=True)
    eps = float(label_smoothing)
    if canonical.probabilities:
        x = canonical.input.to(compute_dtype(input.dtype))
        num_classes = x.shape[1]
        q = canonical.target.to(x.dtype)
        if eps != 0.0:
            q = q * (1.0 - eps) + eps / num_classes
        if weight is not None:
            q = q * weight.to(x.dtype)
        lse = torch.logsumexp(x, dim=1, keepdim=True)
        rows = (q * (lse - x)).sum(dim=1)
        return reduce_rows(rows, torch.tensor(float(x.shape[0]), dtype=x.dtype, device=x.device), canonical,
                           input.dtype)

    def per_row(x: torch.Tensor, t: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        lse = torch.logsumexp(x, dim=1)
        nll = w_t * (lse - x.gather(1, t[:, None])[:, 0])
        if eps == 0.0:
            return nll
        w = torch.ones_like(x[0]) if weight is None else weight.to(x.dtype)
        smooth = (w * (lse[:, None] - x)).sum(dim=1)
        return (1.0 - eps) * nll + eps / x.shape[1] * smooth

    return class_index_loss("cross_entropy", input, target, weight, ignore_index, reduction, per_row)

# Activation references (lossext/activation_reference.py).
from .activation_reference import elu, gelu, hardtanh, leaky_relu, prelu, relu, selu, sigmoid, silu, softmax, swish, tanh  # noqa: E402

__all__ += ["elu", "gelu", "hardtanh", "leaky_relu", "prelu", "relu", "selu", "sigmoid", "silu", "softmax", "swish",
            "tanh"]
