"""nn.Module wrappers of the lossext losses, mirroring torch.nn."""

import inspect
from typing import Callable, Optional

import torch

from . import functional

__all__ = [
    "AlphaLoss",
    "CauchySchwarzLoss",
    "ChebyshevLoss",
    "ClassIndexLoss",
    "CrossEntropyLoss",
    "ExpectationLoss",
    "HingeLoss",
    "L1Loss",
    "L2Loss",
    "RegularizedExpectationLoss",
    "SquaredLogLoss",
    "TanimotoLoss",
]


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


class ClassIndexLoss(torch.nn.Module):
    """Base of the modules over a lossext.functional class-index loss (`function`).

    The constructor takes the loss's own parameters (positionally or by name, with the function's
    defaults), then weight, ignore_index and reduction; each parameter becomes an attribute that
    forward reads, so it can be changed between steps (alpha annealing, say).
    """

    function: Callable  # set by each subclass, as staticmethod(functional.<loss>)

    def __init__(self, *args, weight: Optional[torch.Tensor] = None, ignore_index: int = -100,
                 reduction: str = "mean", **kwargs) -> None:
        super().__init__()
        bound = inspect.Signature(functional.loss_parameters(self.function)).bind(*args, **kwargs)
        bound.apply_defaults()
        self.param_names = tuple(bound.arguments)
        for name, value in bound.arguments.items():
            setattr(self, name, value)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        params = {name: getattr(self, name) for name in self.param_names}
        return self.function(input, target, **params, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction)

    def extra_repr(self) -> str:
        params = "".join(f"{name}={getattr(self, name)}, " for name in self.param_names)
        return f"{params}ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class HingeLoss(ClassIndexLoss):
    """lossext.hinge: HingeLoss(p=1.0, margin=0.5, weight=None, ignore_index=-100, reduction="mean")."""

    function = staticmethod(functional.hinge)


class L1Loss(ClassIndexLoss):
    """lossext.l1 (against the one-hot target; not torch.nn.L1Loss's regression form)."""

    function = staticmethod(functional.l1)


class L2Loss(ClassIndexLoss):
    """lossext.l2 (against the one-hot target)."""

    function = staticmethod(functional.l2)


class ExpectationLoss(ClassIndexLoss):
    """lossext.expectation."""

    function = staticmethod(functional.expectation)


class RegularizedExpectationLoss(ClassIndexLoss):
    """lossext.regularized_expectation."""

    function = staticmethod(functional.regularized_expectation)


class ChebyshevLoss(ClassIndexLoss):
    """lossext.chebyshev."""

    function = staticmethod(functional.chebyshev)


class SquaredLogLoss(ClassIndexLoss):
    """lossext.squared_log."""

    function = staticmethod(functional.squared_log)


class TanimotoLoss(ClassIndexLoss):
    """lossext.tanimoto."""

    function = staticmethod(functional.tanimoto)


class CauchySchwarzLoss(ClassIndexLoss):
    """lossext.cauchy_schwarz."""

    function = staticmethod(functional.cauchy_schwarz)


class AlphaLoss(ClassIndexLoss):
    """lossext.alpha_loss: AlphaLoss(alpha, weight=None, ignore_index=-100, reduction="mean")."""

    function = staticmethod(functional.alpha_loss)
