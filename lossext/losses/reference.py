"""Pure-PyTorch references of the losses: the ground truth in tests and the fallback when lossext._C is missing.

Each function takes the same arguments as its fused counterpart and checks them
the same way (lossext._checks), then computes in the kernels' accumulation dtype
(float32; float64 for float64 inputs) with plain tensor operations, written for
clarity, not speed.
"""

import inspect
import math
from typing import Callable, Optional, Union

import torch

from .._checks import (Canonical, canonicalize, check_alpha, check_hinge_params, check_label_smoothing,
                       check_logit_softcap, check_target_range, check_two_scale_params, check_z_loss)
from .._dtypes import accumulation_dtype

__all__ = [
    "alpha_loss",
    "cauchy_schwarz",
    "chebyshev",
    "cross_entropy",
    "expectation",
    "hinge",
    "l1",
    "l2",
    "logistic",
    "regularized_expectation",
    "squared_log",
    "tanimoto",
    "two_scale_cross_entropy",
]


def log_softmax_rows(x: torch.Tensor) -> torch.Tensor:
    """log p_j = (o_j - m) - log sum_k exp(o_k - m), m the row max: exact for huge logits, finite when p_j underflows.

    m is a constant to autograd: log p does not depend on it, and differentiating through it would
    add the rounding noise of a C-term sum (which should be 0) to the argmax's gradient.
    """
    shifted = x - x.amax(dim=1, keepdim=True).detach()
    return shifted - torch.logsumexp(shifted, dim=1, keepdim=True)


def log_sum_exp_rows(x: torch.Tensor) -> torch.Tensor:
    """lse = m + log sum_k exp(o_k - m), m the row max held constant to autograd (as in log_softmax_rows), so
    that its gradient is the softmax computed from o - m: torch.logsumexp's backward takes exp(o - lse),
    whose relative error is lse's absolute one (1e-3 in float32 at |lse| = 1e4)."""
    max_logit = x.amax(dim=1, keepdim=True).detach()
    return (max_logit + torch.log(torch.exp(x - max_logit).sum(dim=1, keepdim=True)))[:, 0]


def reduce_rows(rows: torch.Tensor, denominator: torch.Tensor, canonical: Canonical, dtype: torch.dtype):
    """Apply the reduction to per-row losses that already carry their class weight w_t."""
    if canonical.reduction == 0:
        return rows.reshape(canonical.batch_shape).to(dtype)
    total = rows.sum()
    if canonical.reduction == 1:
        total = total / denominator  # 0 / 0 = NaN for an empty or all-ignored batch, as in PyTorch
    return total.to(dtype)


def loss_without_classes(canonical: Canonical) -> torch.Tensor:
    """A loss over C = 0 classes, as F.cross_entropy gives it: no row can hold a class index (a target that is
    not ignore_index raises IndexError), so every row's loss is 0, their sum 0 and their mean 0 / 0 = NaN; the
    gradient of the empty input flows through."""
    if not canonical.probabilities:
        check_target_range(canonical.target, 0, canonical.ignore_index)
    rows = canonical.input.sum(dim=1)
    if canonical.reduction == 0:
        return rows.reshape(canonical.batch_shape)
    total = rows.sum()
    return total / 0.0 if canonical.reduction == 1 else total


def probability_target_dtypes(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor]):
    """(input, weight) in the dtype F.cross_entropy computes a probability target's loss in: the promotion of the
    input's and the target's (a float64 target makes a float32 input's loss float64); the input's gradient
    flows back to its own dtype."""
    if not (isinstance(input, torch.Tensor) and isinstance(target, torch.Tensor) and input.is_floating_point()
            and target.is_floating_point() and target.shape == input.shape):
        return input, weight
    dtype = torch.promote_types(input.dtype, target.dtype)
    if isinstance(weight, torch.Tensor) and weight.is_floating_point():
        weight = weight.to(torch.promote_types(dtype, weight.dtype))
        dtype = weight.dtype
    return input.to(dtype), weight


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
    if canonical.input.shape[1] == 0:
        return loss_without_classes(canonical)
    ignore_index = canonical.ignore_index
    x = canonical.input.to(accumulation_dtype(input.dtype))
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
    z_loss: float = 0.0,
    logit_softcap: Optional[float] = None,
) -> torch.Tensor:
    """Cross-entropy as torch.nn.functional.cross_entropy defines it, from logsumexp.

    Per row, with log p = log_softmax(o) and smoothing eps over C classes:
    -(1 - eps) w_t log p_t - eps / C * sum_j w_j log p_j for class indices;
    -sum_j w_j q'_j log p_j with q' = (1 - eps) q + eps / C for class probabilities q;
    plus the z-loss z * lse^2 (times w_t for class indices; PaLM, Chowdhery et al. 2022); with logit_softcap
    c, all of it of the capped logits c tanh(o / c) (Gemma 2).
    """
    check_label_smoothing(label_smoothing)
    check_z_loss(z_loss)
    check_logit_softcap(logit_softcap)

    def capped(x: torch.Tensor) -> torch.Tensor:
        return x if logit_softcap is None else logit_softcap * torch.tanh(x / logit_softcap)

    input, weight = probability_target_dtypes(input, target, weight)
    canonical = canonicalize("cross_entropy", input, target, weight, ignore_index, reduction,
                             allow_probabilities=True)
    eps = float(label_smoothing)
    if canonical.probabilities and canonical.input.shape[1] == 0:
        return loss_without_classes(canonical)
    if canonical.probabilities:
        x = capped(canonical.input.to(accumulation_dtype(input.dtype)))
        num_classes = x.shape[1]
        q = canonical.target.to(x.dtype)
        if eps != 0.0:
            q = q * (1.0 - eps) + eps / num_classes
        if weight is not None:
            q = q * weight.to(x.dtype)
        rows = -(q * log_softmax_rows(x)).sum(dim=1)
        if z_loss != 0.0:
            rows = rows + z_loss * log_sum_exp_rows(x) ** 2
        return reduce_rows(rows, torch.tensor(float(x.shape[0]), dtype=x.dtype, device=x.device), canonical,
                           input.dtype)

    def per_row(x: torch.Tensor, t: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        x = capped(x)
        log_p = log_softmax_rows(x)
        row = -w_t * log_p.gather(1, t[:, None])[:, 0]
        if eps != 0.0:
            w = x.new_ones(x.shape[1]) if weight is None else weight.to(x.dtype)  # x[0] fails for an empty batch
            smooth = -(w * log_p).sum(dim=1)
            row = (1.0 - eps) * row + eps / x.shape[1] * smooth
        if z_loss != 0.0:
            row = row + z_loss * w_t * log_sum_exp_rows(x) ** 2
        return row

    return class_index_loss("cross_entropy", input, target, weight, ignore_index, reduction, per_row)


def two_scale_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    r1: Union[float, torch.Tensor],
    r2: Union[float, torch.Tensor],
    eta: float,
    norm: Union[float, torch.Tensor, None] = None,
    weight: Optional[torch.Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Two-scale cross-entropy (Berlyand, Creese & Jabin 2021, eq. 13), differentiable in input, r1, r2 and norm.

    Per row: delta = X_t - max_{j != t} X_j; r = r1 if delta < eta else r2; the loss is the
    cross-entropy of (r / R) X, R = norm (1 if None). One class: delta = +inf (well classified).
    """
    # lossext.losses.double_backward passes each row its own copy of the scales, (N,) tensors of the op's checked
    # values: only the public call's floats and one-element tensors are checked here.
    if all(not isinstance(v, torch.Tensor) or v.numel() == 1 for v in (r1, r2, norm)):
        check_two_scale_params(r1, r2, eta, norm, input)

    def per_row(x: torch.Tensor, t: torch.Tensor, w_t: torch.Tensor) -> torch.Tensor:
        scales = [torch.as_tensor(1.0 if v is None else v, dtype=x.dtype, device=x.device) for v in (r1, r2, norm)]
        scale_below, scale_above, size = (v.to(x.dtype) for v in scales)
        target_mask = torch.nn.functional.one_hot(t, x.shape[1]).bool()
        runner_up = x.masked_fill(target_mask, float("-inf")).amax(dim=1)
        margin = x.gather(1, t[:, None])[:, 0] - runner_up
        r = torch.where(margin < eta, scale_below, scale_above)
        # (r / R) x with -inf logits kept -inf and kept out of r's gradient, sum_j p_j x_j, where
        # p_j = 0 meets x_j = -inf: the limit of p_j x_j is 0 (autograd would form 0 * -inf = NaN).
        minus_inf = torch.isneginf(x)
        scaled = torch.where(minus_inf, float("-inf"), (r / size)[:, None] * x.masked_fill(minus_inf, 0.0))
        log_p = log_softmax_rows(scaled)
        return -w_t * log_p.gather(1, t[:, None])[:, 0]

    return class_index_loss("two_scale_cross_entropy", input, target, weight, ignore_index, reduction, per_row)


# The Janocha & Czarnecki (2017, Table 1) losses and the alpha-loss, written from their
# formulas for one-hot targets y (y^ = 2y - 1 in {-1, +1}) and p = softmax(o). The softmax
# losses take log p from log_softmax_rows, so log p_t stays finite when p_t underflows.


def one_hot_rows(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The one-hot targets y of class indices t, in x's dtype and shape."""
    return torch.zeros_like(x).scatter_(1, t[:, None], 1.0)


def target_log_probability(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log p_t per row."""
    return log_softmax_rows(x).gather(1, t[:, None])[:, 0]


def hinge(input: torch.Tensor, target: torch.Tensor, p: float = 1.0, margin: float = 0.5,
          weight: Optional[torch.Tensor] = None, ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """sum_j max(0, margin - y^_j o_j)^p, max(0, .) as torch.relu (its gradient is 0 at 0)."""
    check_hinge_params(p, margin)

    def per_row(x, t, w_t):
        signed_target = 2.0 * one_hot_rows(x, t) - 1.0
        return w_t * torch.relu(margin - signed_target * x).pow(p).sum(1)

    return class_index_loss("hinge", input, target, weight, ignore_index, reduction, per_row)


def l1(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
       ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """L1 loss against the one-hot target (not torch.nn.L1Loss's regression form): sum_j |y_j - o_j|."""
    def per_row(x, t, w_t):
        return w_t * (one_hot_rows(x, t) - x).abs().sum(1)

    return class_index_loss("l1", input, target, weight, ignore_index, reduction, per_row)


def l2(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
       ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """L2 loss against the one-hot target: sum_j (y_j - o_j)^2."""
    def per_row(x, t, w_t):
        return w_t * (one_hot_rows(x, t) - x).pow(2).sum(1)

    return class_index_loss("l2", input, target, weight, ignore_index, reduction, per_row)


def logistic(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
             ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """One-vs-all logistic cross-entropy: sum_j log(1 + exp(-y^_j o_j)), y^_j = +1 at the target and -1
    elsewhere (Mendez-Vazquez 2025, Logistic-Cross Entropy).

    Computed as logaddexp(0, -y^ o): no overflow, and exact where softplus switches to its linear branch.
    """
    def per_row(x, t, w_t):
        margin = -(2.0 * one_hot_rows(x, t) - 1.0) * x
        return w_t * torch.logaddexp(torch.zeros_like(margin), margin).sum(1)

    return class_index_loss("logistic", input, target, weight, ignore_index, reduction, per_row)


def expectation(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Expectation loss: sum_j |y_j - p_j| = 2 - 2 p_t (Proposition 1)."""
    def per_row(x, t, w_t):
        return w_t * (one_hot_rows(x, t) - log_softmax_rows(x).exp()).abs().sum(1)

    return class_index_loss("expectation", input, target, weight, ignore_index, reduction, per_row)


def regularized_expectation(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                            ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Regularised expectation loss: sum_j (y_j - p_j)^2."""
    def per_row(x, t, w_t):
        return w_t * (one_hot_rows(x, t) - log_softmax_rows(x).exp()).pow(2).sum(1)

    return class_index_loss("regularized_expectation", input, target, weight, ignore_index, reduction, per_row)


def chebyshev(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
              ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Chebyshev loss: max_j |p_j - y_j|, which equals 1 - p_t (the target always attains the max).

    Computed as the max over the row; at ties the gradient goes to one maximiser (torch.max's).
    """
    def per_row(x, t, w_t):
        return w_t * (log_softmax_rows(x).exp() - one_hot_rows(x, t)).abs().max(dim=1).values

    return class_index_loss("chebyshev", input, target, weight, ignore_index, reduction, per_row)


def squared_log(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Squared log loss: sum_j [y_j log p_j]^2 = (log p_t)^2 (Table 1's leading minus is a typo)."""
    def per_row(x, t, w_t):
        return w_t * target_log_probability(x, t).pow(2)

    return class_index_loss("squared_log", input, target, weight, ignore_index, reduction, per_row)


def tanimoto(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
             ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Tanimoto loss: -sum_j p_j y_j / (||p||^2 + ||y||^2 - sum_j p_j y_j), in [-1, 0]."""
    def per_row(x, t, w_t):
        p = log_softmax_rows(x).exp()
        y = one_hot_rows(x, t)
        overlap = (p * y).sum(1)
        return w_t * -overlap / ((p * p).sum(1) + (y * y).sum(1) - overlap)

    return class_index_loss("tanimoto", input, target, weight, ignore_index, reduction, per_row)


def cauchy_schwarz(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                   ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Cauchy-Schwarz divergence: -log(sum_j p_j y_j / (||p|| ||y||)) = -log p_t + log ||p|| (Proposition 3).

    Computed as -(log p_t - log ||p|| - log ||y||), each log taken on its own factor so that log p_t comes
    from log_softmax_rows.
    """
    def per_row(x, t, w_t):
        p = log_softmax_rows(x).exp()
        y = one_hot_rows(x, t)
        return w_t * -(target_log_probability(x, t) - p.norm(dim=1).log() - y.norm(dim=1).log())

    return class_index_loss("cauchy_schwarz", input, target, weight, ignore_index, reduction, per_row)


def alpha_loss(input: torch.Tensor, target: torch.Tensor, alpha: float, weight: Optional[torch.Tensor] = None,
               ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """alpha / (alpha - 1) * (1 - p_t^((alpha - 1) / alpha)); -log p_t at alpha = 1, 1 - p_t at alpha = inf.

    1 - p_t^beta is written -expm1(beta log p_t) so it does not cancel for alpha near 1. At alpha = inf
    it is 1 - exp(log p_t) as written: torch's expm1 backward, grad * (expm1(x) + 1), would cancel for small p_t.
    """
    check_alpha(alpha)

    def per_row(x, t, w_t):
        log_p = target_log_probability(x, t)
        if alpha == 1.0:
            return w_t * -log_p
        if math.isinf(alpha):
            return w_t * (1.0 - log_p.exp())
        return w_t * alpha / (alpha - 1.0) * -torch.expm1((alpha - 1.0) / alpha * log_p)

    return class_index_loss("alpha_loss", input, target, weight, ignore_index, reduction, per_row)


# The losses taking only (input, target, weight, ignore_index, reduction), none of their own parameters:
# lossext.functional, lossext.nn and lossext.autograd make their function, module and Function from the
# name and the docstring above, where the others' are written out.
_CLASS_INDEX_ARGUMENTS = ["input", "target", "weight", "ignore_index", "reduction"]
PARAMETER_FREE_LOSS_NAMES = tuple(name for name in __all__
                                  if list(inspect.signature(globals()[name]).parameters) == _CLASS_INDEX_ARGUMENTS)
