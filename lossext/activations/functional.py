"""The activation functions: fused kernels when lossext._C has them for the input's device, the reference otherwise.

Each activation `<name>` checks its arguments (lossext._checks) and runs
`torch.ops.lossext.<name>_forward`, whose autograd formula (lossext.activations.ops)
saves one tensor, the output or the input, for `<name>_backward`; or, without
kernels for the device, lossext.activations.reference.
"""

from typing import Optional, Union

import torch

from .. import _extension
from .._checks import (check_activation_input, check_channel_parameter, check_gelu_approximate,
                       check_hardtanh_bounds, check_not_inplace, check_swish_beta)
from . import ops as _ops  # noqa: F401  (registers the fake kernels and autograd formulas of the ops called here)
from . import reference

# The same functions as the reference, each with a fused kernel behind it.
__all__ = list(reference.__all__)


def _use_kernels(name: str, input: torch.Tensor, inplace: bool = False) -> bool:
    """Check a call as both backends require, and say whether the kernels run it."""
    check_activation_input(name, input)
    check_not_inplace(name, inplace)
    return _extension.use_extension(input.device)


def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """max(x, 0), as torch.nn.functional.relu; saves the output."""
    if not _use_kernels("relu", input, inplace):
        return reference.relu(input)
    return torch.ops.lossext.relu_forward(input)


def leaky_relu(input: torch.Tensor, negative_slope: float = 0.01, inplace: bool = False) -> torch.Tensor:
    """x for x > 0, negative_slope * x otherwise; saves the output for negative_slope >= 0."""
    if not _use_kernels("leaky_relu", input, inplace):
        return reference.leaky_relu(input, negative_slope)
    return torch.ops.lossext.leaky_relu_forward(input, float(negative_slope))


def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with learnable slope `weight`, one value or one per channel (dim 1); saves input and weight."""
    use_kernels = _use_kernels("prelu", input)
    check_channel_parameter("prelu", "weight", input, weight)
    if not use_kernels:
        return reference.prelu(input, weight)
    return torch.ops.lossext.prelu_forward(input, weight)


def elu(input: torch.Tensor, alpha: float = 1.0, inplace: bool = False) -> torch.Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise; saves the output for alpha >= 0."""
    if not _use_kernels("elu", input, inplace):
        return reference.elu(input, alpha)
    return torch.ops.lossext.elu_forward(input, float(alpha))


def selu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """SELU (scaled ELU with alpha 1.6733, scale 1.0507); saves the output."""
    if not _use_kernels("selu", input, inplace):
        return reference.selu(input)
    return torch.ops.lossext.selu_forward(input)


def silu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """x * sigmoid(x); saves the input."""
    if not _use_kernels("silu", input, inplace):
        return reference.silu(input)
    return torch.ops.lossext.silu_forward(input)


def swish(input: torch.Tensor, beta: Union[float, torch.Tensor]) -> torch.Tensor:
    """x * sigmoid(beta * x); beta a float, or a tensor (one value or one per channel of dim 1) that may
    require grad. beta = 1 is SiLU. Saves the input and beta."""
    use_kernels = _use_kernels("swish", input)
    check_swish_beta(input, beta)
    if not use_kernels:
        return reference.swish(input, beta)
    beta_tensor = beta if isinstance(beta, torch.Tensor) else torch.full((), float(beta), dtype=input.dtype,
                                                                         device=input.device)
    return torch.ops.lossext.swish_forward(input, beta_tensor)


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """x Phi(x), or its tanh approximation (approximate="tanh"); saves the input."""
    use_kernels = _use_kernels("gelu", input)
    check_gelu_approximate(approximate)
    if not use_kernels:
        return reference.gelu(input, approximate)
    return torch.ops.lossext.gelu_forward(input, approximate)


def sigmoid(input: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^-x); saves the output."""
    if not _use_kernels("sigmoid", input):
        return reference.sigmoid(input)
    return torch.ops.lossext.sigmoid_forward(input)


def tanh(input: torch.Tensor) -> torch.Tensor:
    """tanh x; saves the output."""
    if not _use_kernels("tanh", input):
        return reference.tanh(input)
    return torch.ops.lossext.tanh_forward(input)


def hardtanh(input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> torch.Tensor:
    """clamp(x, min_val, max_val); saves the output."""
    use_kernels = _use_kernels("hardtanh", input, inplace)
    check_hardtanh_bounds(min_val, max_val)
    if not use_kernels:
        return reference.hardtanh(input, min_val, max_val)
    return torch.ops.lossext.hardtanh_forward(input, float(min_val), float(max_val))


def softmax(input: torch.Tensor, dim: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Softmax along `dim` (any dim; a non-last one is handled in place, not transposed); saves the output.
    With `dtype`, the input is cast to it first, as torch.nn.functional.softmax does."""
    if dtype is not None:
        input = input.to(dtype)
    if not _use_kernels("softmax", input):
        return reference.softmax(input, dim)
    return torch.ops.lossext.softmax_forward(input, dim)
