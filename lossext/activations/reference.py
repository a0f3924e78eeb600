"""Pure-PyTorch references of the activations: ground truth in tests and the fallback when lossext._C is missing.

Each is written from its formula with elementary tensor operations (never the
torch.nn.functional op of the same name) in the kernels' accumulation dtype
(float32; float64 for float64 inputs) and cast back, with autograd providing the gradient. Where the branch
of torch.where that is not selected could overflow (its gradient would then
be 0 * inf = NaN), its argument is confined to its own side first, so
gradients stay finite where the math says they are. NaN takes the branch
PyTorch's vectorised kernels give it, so forward values and gradients at +-inf
and NaN match torch.nn.functional in float64 (whose scalar remainder loops
treat NaN otherwise in elu_backward and hardtanh_backward).
"""

import math
from typing import Optional, Union

import torch

from .._checks import check_gelu_approximate, check_hardtanh_bounds, check_not_inplace
from .._dtypes import accumulation_dtype

__all__ = [
    "elu",
    "gelu",
    "hardtanh",
    "leaky_relu",
    "prelu",
    "relu",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "swish",
    "tanh",
]

# Klambauer et al. (2017), as torch.nn.SELU.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _compute(input: torch.Tensor) -> torch.Tensor:
    return input.to(accumulation_dtype(input.dtype))


def channel_view(parameter: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """A per-channel parameter (C,) shaped to broadcast along dim 1 of `input`; a single value as is."""
    if parameter.numel() == 1:
        return parameter.reshape(())
    return parameter.reshape((1, -1) + (1,) * (input.dim() - 2))


def logistic(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^-x) = exp(-log(1 + e^-x)), the log-sum taken by logaddexp so no exp overflows
    (its gradient too), NaN stays NaN and +-inf give 1 and 0."""
    return torch.exp(-torch.logaddexp(torch.zeros_like(x), -x))


def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """max(x, 0), with zero gradient at 0 and NaN passed through (gradient 1), as in PyTorch."""
    check_not_inplace("relu", inplace)
    x = _compute(input)
    return torch.where(x <= 0, torch.zeros((), dtype=x.dtype, device=x.device), x).to(input.dtype)


def leaky_relu(input: torch.Tensor, negative_slope: float = 0.01, inplace: bool = False) -> torch.Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    check_not_inplace("leaky_relu", inplace)
    x = _compute(input)
    return torch.where(x > 0, x, negative_slope * x).to(input.dtype)


def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x for x > 0, w * x otherwise, w one value or one per channel (dim 1)."""
    x = _compute(input)
    w = channel_view(weight.to(x.dtype), input)
    # w times x's negative part, so that x = +inf puts 0 (not 0 * inf) into w's gradient.
    negative_part = torch.where(x > 0, torch.zeros((), dtype=x.dtype, device=x.device), x)
    return torch.where(x > 0, x, w * negative_part).to(input.dtype)


def non_positive_part(x: torch.Tensor) -> torch.Tensor:
    """x where x <= 0 (or NaN), else 0, with gradient 1 at x = 0 itself: not x.clamp(max=0), whose
    gradient at the bound changed between torch 2.13 (1) and 2.14 (0). Keeps expm1 away from large x."""
    return torch.where(x > 0, torch.zeros((), dtype=x.dtype, device=x.device), x)


def exp_minus_one(x: torch.Tensor) -> torch.Tensor:
    """e^x - 1 with the value of expm1 and the gradient e^x: torch's expm1 backward forms expm1(x) + 1, which
    cancels to 0 for x below about -17 in float32 (e^-17 = 4e-8 is under an ulp of 1). The second term is 0 in
    value and carries the gradient."""
    e = torch.exp(x)
    return torch.expm1(x).detach() + (e - e.detach())


def elu(input: torch.Tensor, alpha: float = 1.0, inplace: bool = False) -> torch.Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise; NaN takes the exponential branch, so its gradient is NaN,
    as in PyTorch's vectorised elu_backward."""
    check_not_inplace("elu", inplace)
    x = _compute(input)
    return torch.where(x > 0, x, alpha * exp_minus_one(non_positive_part(x))).to(input.dtype)


def selu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """scale * elu(x, alpha) with SELU's constants."""
    check_not_inplace("selu", inplace)
    x = _compute(input)
    return (SELU_SCALE * torch.where(x > 0, x, SELU_ALPHA * exp_minus_one(non_positive_part(x)))).to(input.dtype)


def sigmoid(input: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^-x)."""
    return logistic(_compute(input)).to(input.dtype)


def tanh(input: torch.Tensor) -> torch.Tensor:
    """(e^2x - 1) / (e^2x + 1) = 2 sigmoid(2x) - 1."""
    return (2 * logistic(2 * _compute(input)) - 1).to(input.dtype)


def silu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """x * sigmoid(x)."""
    check_not_inplace("silu", inplace)
    x = _compute(input)
    return (x * logistic(x)).to(input.dtype)


def swish(input: torch.Tensor, beta: Union[float, torch.Tensor]) -> torch.Tensor:
    """x * sigmoid(beta * x), beta a float, one value or one per channel (dim 1); beta = 1 is SiLU."""
    x = _compute(input)
    b = channel_view(beta.to(x.dtype), input) if isinstance(beta, torch.Tensor) else float(beta)
    return (x * logistic(b * x)).to(input.dtype)


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2; or x (1 + tanh u) / 2 = x sigmoid(2u),
    u = sqrt(2/pi) (x + 0.044715 x^3)."""
    check_gelu_approximate(approximate)
    x = _compute(input)
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return (x * logistic(2 * inner)).to(input.dtype)
    return (x * 0.5 * torch.special.erfc(-x * math.sqrt(0.5))).to(input.dtype)


def hardtanh(input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> torch.Tensor:
    """clamp(x, min_val, max_val), with zero gradient at the bounds themselves and at NaN (which passes
    through), as in PyTorch's vectorised hardtanh_backward."""
    check_not_inplace("hardtanh", inplace)
    check_hardtanh_bounds(min_val, max_val)
    x = _compute(input)
    # The bounds in the compute dtype, unrounded to the input's, as PyTorch and the kernels compare them.
    lo_t = torch.full((), min_val, dtype=x.dtype, device=x.device)
    hi_t = torch.full((), max_val, dtype=x.dtype, device=x.device)
    clamped = torch.where(x <= lo_t, lo_t, torch.where(x >= hi_t, hi_t, x.detach()))
    return torch.where((x > lo_t) & (x < hi_t), x, clamped).to(input.dtype)


def softmax(input: torch.Tensor, dim: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """e^(x - m) / sum e^(x - m) along dim, m the max along dim.

    m is detached: softmax does not depend on the shift, so its gradient through m is zero.
    """
    if dtype is not None:
        input = input.to(dtype)
    x = _compute(input)
    if x.numel() == 0:
        return x.to(input.dtype)  # nothing to normalise (and amax rejects an empty dim)
    shifted = x - x.amax(dim=dim, keepdim=True).detach()
    e = torch.exp(shifted)
    return (e / e.sum(dim=dim, keepdim=True)).to(input.dtype)
