"""nn.Module wrappers of the losses, mirroring torch.nn, and parameter_norm (R of the two-scale loss)."""

import inspect
from typing import Callable, Optional, Tuple, Union

import torch

from . import functional
from .ops import add_public_class
from .reference import PARAMETER_FREE_LOSS_NAMES

# The modules written out; each parameter-free loss's (lossext.losses.reference.PARAMETER_FREE_LOSS_NAMES) is made
# at the end of this file and appended.
__all__ = [
    "AlphaLoss",
    "ClassIndexLoss",
    "CrossEntropyLoss",
    "HingeLoss",
    "TwoScaleCrossEntropyLoss",
    "parameter_norm",
]


class CrossEntropyLoss(torch.nn.Module):
    """Drop-in for torch.nn.CrossEntropyLoss, running lossext.cross_entropy."""

    def __init__(self, weight: Optional[torch.Tensor] = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0, z_loss: float = 0.0, logit_softcap: Optional[float] = None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.z_loss = z_loss
        self.logit_softcap = logit_softcap

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                        reduction=self.reduction, label_smoothing=self.label_smoothing,
                                        z_loss=self.z_loss, logit_softcap=self.logit_softcap)

    def extra_repr(self) -> str:
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}, z_loss={self.z_loss}, logit_softcap={self.logit_softcap}")


class TwoScaleCrossEntropyLoss(torch.nn.Module):
    """Two-scale cross-entropy (Berlyand, Creese & Jabin 2021) in its three training variants.

    mode="adaptive": r1 and r2 are nn.Parameters trained with the network (eq. 13-14).
    mode="fixed": r1 and r2 are buffers (eq. 16).
    mode="separation": rows below the margin use the network's own scale R, the others R_s R,
        with R_s (initialised to r2 / r1) the parameter (eq. 17-18).
    forward(input, target, norm=None) takes the network's size R (lossext.parameter_norm), 1 if None.
    """

    MODES = ("adaptive", "fixed", "separation")

    def __init__(self, eta: float, r1: float = 1.0, r2: float = 10.0, mode: str = "adaptive",
                 weight: Optional[torch.Tensor] = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"TwoScaleCrossEntropyLoss: mode must be one of {self.MODES}, got {mode!r}")
        if not (r1 > 0 and r2 > 0):
            raise ValueError(f"TwoScaleCrossEntropyLoss: r1 and r2 must be positive, got {r1} and {r2}")
        self.eta = eta
        self.mode = mode
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.register_buffer("weight", weight)
        if mode == "adaptive":
            self.r1 = torch.nn.Parameter(torch.tensor(float(r1)))
            self.r2 = torch.nn.Parameter(torch.tensor(float(r2)))
        elif mode == "fixed":
            self.register_buffer("r1", torch.tensor(float(r1)))
            self.register_buffer("r2", torch.tensor(float(r2)))
        else:
            self.separation = torch.nn.Parameter(torch.tensor(float(r2) / float(r1)))

    def _scales(self, input: torch.Tensor, norm: Union[float, torch.Tensor, None]):
        """(r1, r2, R) for this call."""
        size = torch.ones((), device=input.device) if norm is None else torch.as_tensor(norm, device=input.device)
        if self.mode == "separation":
            return size, self.separation * size, size
        return self.r1, self.r2, size

    def forward(self, input: torch.Tensor, target: torch.Tensor,
                norm: Union[float, torch.Tensor, None] = None) -> torch.Tensor:
        r1, r2, size = self._scales(input, norm)
        return functional.two_scale_cross_entropy(input, target, r1, r2, self.eta, size, weight=self.weight,
                                                  ignore_index=self.ignore_index, reduction=self.reduction)

    @torch.no_grad()
    def predict_proba(self, input: torch.Tensor, norm: Union[float, torch.Tensor, None] = None) -> torch.Tensor:
        """Class probabilities at the scale the paper uses at test time: softmax((r1 / R) X), or softmax(X) for
        "separation" (whose first scale is R itself). Class dimension 1 (0 for a 1-D input)."""
        r1, _, size = self._scales(input, norm)
        class_dim = 0 if input.dim() == 1 else 1
        return torch.softmax(input * (r1 / size).to(input.dtype), dim=class_dim)

    def extra_repr(self) -> str:
        return f"eta={self.eta}, mode={self.mode!r}, reduction={self.reduction!r}"


def parameter_norm(module: torch.nn.Module) -> torch.Tensor:
    """R = prod_i ||alpha^i|| (Berlyand, Creese & Jabin 2021, eq. 9), differentiable.

    alpha^i is the vector of all parameters of linear layer i (weight and bias), for every
    nn.Linear and nn.Conv1d/2d/3d in `module`; ||.|| is the Euclidean norm.
    """
    layer_types = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    norms = []
    for layer in module.modules():
        if isinstance(layer, layer_types):
            squares = layer.weight.pow(2).sum()
            if layer.bias is not None:
                squares = squares + layer.bias.pow(2).sum()
            norms.append(squares.sqrt())
    if not norms:
        raise ValueError("parameter_norm: the module has no Linear or Conv layer")
    return torch.stack(norms).prod()


class ClassIndexLoss(torch.nn.Module):
    """Base of the modules over a lossext.functional class-index loss (`function`).

    A subclass sets `function` and names the loss's own parameters in `param_names`; its constructor
    stores them as attributes, which forward reads at each call, so they can be changed between
    steps (alpha annealing, say). This constructor takes what every such loss takes.
    """

    function: Callable[..., torch.Tensor]  # set by each subclass, as staticmethod(functional.<loss>)
    param_names: Tuple[str, ...] = ()  # the loss's own parameters, in the order the function takes them

    def __init__(self, weight: Optional[torch.Tensor] = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        """weight: per-class weights (C,) or None; ignore_index: the target value whose rows count zero;
        reduction: "none", "mean" (weighted as in F.cross_entropy) or "sum"."""
        super().__init__()
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
    """lossext.hinge: sum_j max(0, margin - y^_j o_j)^p, p >= 1."""

    function = staticmethod(functional.hinge)
    param_names = ("p", "margin")

    def __init__(self, p: float = 1.0, margin: float = 0.5, weight: Optional[torch.Tensor] = None,
                 ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        self.p = p
        self.margin = margin


class AlphaLoss(ClassIndexLoss):
    """lossext.alpha_loss: alpha / (alpha - 1) * (1 - p_t^((alpha - 1) / alpha)), alpha in (0, inf]; no default."""

    function = staticmethod(functional.alpha_loss)
    param_names = ("alpha",)

    def __init__(self, alpha: float, weight: Optional[torch.Tensor] = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, ignore_index, reduction)
        self.alpha = alpha


for _name in PARAMETER_FREE_LOSS_NAMES:
    _function = getattr(functional, _name)
    _summary = inspect.getdoc(_function).split("\n\n")[0]  # the docstring's first paragraph: what the loss is
    add_public_class(globals(), _name, "Loss", ClassIndexLoss, f"lossext.{_name} as a module. {_summary}",
                     function=staticmethod(_function))
