"""nn.Module wrappers of the activations, mirroring torch.nn (plus Swish with a learnable beta)."""

from typing import Callable

import torch

from .._checks import check_hardtanh_bounds
from . import functional

__all__ = ["ELU", "GELU", "Hardtanh", "LeakyReLU", "PReLU", "ReLU", "SELU", "SiLU", "Sigmoid", "Softmax", "Swish",
           "Tanh"]


class ParameterFreeActivation(torch.nn.Module):
    """Base of the modules over an activation without parameters (`function`)."""

    function: Callable[[torch.Tensor], torch.Tensor]  # set by each subclass, as staticmethod(functional.<name>)

    def __init__(self) -> None:  # spelled out so that the constructor's signature says it takes nothing
        super().__init__()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.function(input)


class ReLU(ParameterFreeActivation):
    """max(x, 0) (lossext.relu), as torch.nn.ReLU."""

    function = staticmethod(functional.relu)


class LeakyReLU(torch.nn.Module):
    """x for x > 0, negative_slope * x otherwise (lossext.leaky_relu), as torch.nn.LeakyReLU."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return functional.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(torch.nn.Module):
    """torch.nn.PReLU: a learnable slope, one shared (num_parameters=1) or one per channel of dim 1."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = torch.nn.Parameter(torch.full((num_parameters,), init, device=device, dtype=dtype))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return functional.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(torch.nn.Module):
    """x for x > 0, alpha (e^x - 1) otherwise (lossext.elu), as torch.nn.ELU."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return functional.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(ParameterFreeActivation):
    """SELU (lossext.selu), as torch.nn.SELU."""

    function = staticmethod(functional.selu)


class SiLU(ParameterFreeActivation):
    """x * sigmoid(x) (lossext.silu), as torch.nn.SiLU."""

    function = staticmethod(functional.silu)


class Swish(torch.nn.Module):
    """x * sigmoid(beta * x) with a learnable beta, one shared (num_parameters=1) or one per channel of dim 1.
    init=1.0 starts as SiLU."""

    def __init__(self, num_parameters: int = 1, init: float = 1.0, device=None, dtype=None) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.beta = torch.nn.Parameter(torch.full((num_parameters,), init, device=device, dtype=dtype))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return functional.swish(input, self.beta)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class GELU(torch.nn.Module):
    """x Phi(x), or its tanh approximation (lossext.gelu), as torch.nn.GELU."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return functional.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(ParameterFreeActivation):
    """1 / (1 + e^-x) (lossext.sigmoid), as torch.nn.Sigmoid."""

    function = staticmethod(functional.sigmoid)


class Tanh(ParameterFreeActivation):
    """tanh x (lossext.tanh), as torch.nn.Tanh."""

    function = staticmethod(functional.tanh)


class Hardtanh(torch.nn.Module):
    """clamp(x, min_val, max_val) (lossext.hardtanh), as torch.nn.Hardtanh."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__()
        check_hardtanh_bounds(min_val, max_val)
        self.min_val = min_val
        self.max_val = max_val

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return functional.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Softmax(torch.nn.Module):
    """Softmax along `dim` (lossext.softmax), as torch.nn.Softmax."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return functional.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
