"""nn.Module wrappers of the lossext losses, mirroring torch.nn."""

from typing import Optional

import torch

from . import functional

__all__ = ["CrossEntropyLoss"]


class CrossEntropyLoss(torch.nn.Module):
    """Drop-in for torch.nn.CrossEntropyLoss, running lossext.cross_entropy."""

    def __init__(self, weight: Optional[torch.Tensor] = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                        reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"

# Activation modules (lossext/activation_modules.py).
from .activation_modules import ELU, GELU, SELU, Hardtanh, LeakyReLU, PReLU, ReLU, Sigmoid, SiLU, Softmax, Swish, Tanh  # noqa: E402

__all__ += ["ELU", "GELU", "Hardtanh", "LeakyReLU", "PReLU", "ReLU", "SELU", "SiLU", "Sigmoid", "Softmax", "Swish",
            "Tanh"]
