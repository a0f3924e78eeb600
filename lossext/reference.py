"""Pure-PyTorch references: the ground truth in tests and the fallback when lossext._C is missing.

Each function takes the same arguments as its fused counterpart and checks them
the same way (lossext._canonical), then computes in float32 (float64 for
float64 inputs) with plain tensor operations, written for clarity, not speed.
"""

from typing import Callable, Optional

import torch

from ._canonical import Canonical, canonicalize, check_target_range

__all__ = ["cross_entropy", "two_scale_cross_entropy"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float32, float16 and bfloat16 are computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_label_smoothing(label_smoothing: float) -> None:
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")


def log_softmax_rows(x: torch.Tensor) -> torch.Tensor:
    """log p_j = (o_j - m) - log sum_k exp(o_k - m), m the row max: exact for huge logits, finite when p_j underflows."""
    shifted = x - x.amax(dim=1, keepdim=True)
    return shifted - torch.logsumexp(shifted, dim=1, keepdim=True)


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

    Per row, with log p = log_softmax(o) and smoothing eps over C classes:
    -(1 - eps) w_t log p_t - eps / C * sum_j w_j log p_j for class indices;
    -sum_j w_j q'_j log p_j with q' = (1 - eps) q + eps / C for class probabilities q.
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
        rows = -(q * log_softmax_rows(x)).sum(dim=1)
        return reduce_rows(rows, torch.tensor(float(x.shape[0]), dtype=x.dtype, device=x.device), canonical,
                           input.dtype)

    def per_row(x: torch.Tensor, t: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        log_p = log_softmax_rows(x)
        nll = -w_t * log_p.gather(1, t[:, None])[:, 0]
        if eps == 0.0:
            return nll
        w = torch.ones_like(x[0]) if weight is None else weight.to(x.dtype)
        smooth = -(w * log_p).sum(dim=1)
        return (1.0 - eps) * nll + eps / x.shape[1] * smooth

    return class_index_loss("cross_entropy", input, target, weight, ignore_index, reduction, per_row)


def two_scale_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    r1,
    r2,
    eta: float,
    norm=None,
    weight: Optional[torch.Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Two-scale cross-entropy (Berlyand, Creese & Jabin 2021, eq. 13), differentiable in input, r1, r2 and norm.

    Per row: delta = X_t - max_{j != t} X_j; r = r1 if delta < eta else r2; the loss is the
    cross-entropy of (r / R) X, R = norm (1 if None). One class: delta = +inf (well classified).
    """
    def per_row(x: torch.Tensor, t: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        scales = [torch.as_tensor(1.0 if v is None else v, dtype=x.dtype, device=x.device) for v in (r1, r2, norm)]
        scale_below, scale_above, size = (v.to(x.dtype) for v in scales)
        target_mask = torch.nn.functional.one_hot(t, x.shape[1]).bool()
        runner_up = x.masked_fill(target_mask, float("-inf")).amax(dim=1)
        margin = x.gather(1, t[:, None])[:, 0] - runner_up
        r = torch.where(margin < eta, scale_below, scale_above)
        log_p = log_softmax_rows((r / size)[:, None] * x)
        return -w_t * log_p.gather(1, t[:, None])[:, 0]

    return class_index_loss("two_scale_cross_entropy", input, target, weight, ignore_index, reduction, per_row)


# Activation references (lossext/activation_reference.py).
from .activation_reference import elu, gelu, hardtanh, leaky_relu, prelu, relu, selu, sigmoid, silu, softmax, swish, tanh  # noqa: E402

__all__ += ["elu", "gelu", "hardtanh", "leaky_relu", "prelu", "relu", "selu", "sigmoid", "silu", "softmax", "swish",
            "tanh"]
