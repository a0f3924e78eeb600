"""nn.Module wrappers of the lossext activations, mirroring torch.nn (plus Swish with a learnable beta)."""

import torch

from . import activations

__all__ = ["ELU", "GELU", "Hardtanh", "LeakyReLU", "PReLU", "ReLU", "SELU", "SiLU", "Sigmoid", "Softmax", "Swish",
           "Tanh"]


class ReLU(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.relu(input)


class LeakyReLU(torch.nn.Module):
    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(torch.nn.Module):
    """torch.nn.PReLU: a learnable slope, one shared (num_parameters=1) or one per channel of dim 1."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = torch.nn.Parameter(torch.full((num_parameters,), init, device=device, dtype=dtype))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(torch.nn.Module):
    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.selu(input)


class SiLU(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.silu(input)


class Swish(torch.nn.Module):
    """x * sigmoid(beta * x) with a learnable beta, one shared (num_parameters=1) or one per channel of dim 1.
    init=1.0 starts as SiLU."""

    def __init__(self, num_parameters: int = 1, init: float = 1.0, device=None, dtype=None) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.beta = torch.nn.Parameter(torch.full((num_parameters,), init, device=device, dtype=dtype))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.swish(input, self.beta)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class GELU(torch.nn.Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.sigmoid(input)


class Tanh(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.tanh(input)


class Hardtanh(torch.nn.Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__()
        if min_val > max_val:
            raise ValueError("min_val cannot be greater than max_val")
        self.min_val = min_val
        self.max_val = max_val

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Softmax(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return activations.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
