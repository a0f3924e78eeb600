"""The public loss functions: fused kernels when lossext._C is loaded, the reference otherwise."""

from typing import Callable, Optional, Sequence

import torch

from . import _extension, reference
from ._canonical import canonicalize
from ._ops import row_loss
from .reference import check_label_smoothing

__all__ = ["cross_entropy", "two_scale_cross_entropy"]


def _needs_reference(input: torch.Tensor, *others: Optional[torch.Tensor]) -> bool:
    """The reference runs when the kernels cannot: no extension for this device, or a
    gradient the kernels do not produce (for class weights or soft targets)."""
    if not _extension.use_extension(input.device):
        return True
    return any(t is not None and t.requires_grad for t in others)


def class_index_loss(
    name: str,
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    ignore_index: int,
    reduction: str,
    params: Sequence[float],
    reference_fn: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """Run the row loss `name` (class-index targets) on any input shape; `reference_fn` is the fallback."""
    if _needs_reference(input, weight):
        return reference_fn()
    canonical = canonicalize(name, input, target, weight, ignore_index, reduction)
    loss = row_loss(name, canonical.input, canonical.target, weight, params, ignore_index, canonical.reduction)
    return loss.reshape(canonical.batch_shape) if canonical.reduction == 0 else loss


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Fused softmax cross-entropy; a drop-in for torch.nn.functional.cross_entropy.

    input: (C,), (N, C) or (N, C, d1, ..., dk) logits. target: class indices
    (int64, int32 or uint8) of the input's shape without the class dimension,
    or class probabilities of the input's shape.
    """
    check_label_smoothing(label_smoothing)

    def run_reference() -> torch.Tensor:
        return reference.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)

    canonical = canonicalize("cross_entropy", input, target, weight, ignore_index, reduction,
                             allow_probabilities=True)
    if not canonical.probabilities:
        return class_index_loss("cross_entropy", input, target, weight, ignore_index, reduction,
                                [label_smoothing], run_reference)
    if _needs_reference(input, weight, target):
        return run_reference()
    loss = row_loss("cross_entropy_probabilities", canonical.input, canonical.target, weight, [label_smoothing],
                    ignore_index, canonical.reduction)
    return loss.reshape(canonical.batch_shape) if canonical.reduction == 0 else loss


def _scale_tensor(values, input: torch.Tensor) -> torch.Tensor:
    """Python floats or one-element tensors (which may require grad) as one 1-D tensor on input's device,
    in the kernels' accumulation dtype; gradients flow back to the tensors through torch.stack."""
    dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    scalars = []
    for name, value in values:
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"two_scale_cross_entropy: {name} must be a float or a one-element tensor, "
                                 f"got shape {tuple(value.shape)}")
            if value.device != input.device:
                raise RuntimeError(f"two_scale_cross_entropy: {name} must be on the input's device "
                                   f"({input.device}), got {value.device}")
            scalars.append(value.reshape(()).to(dtype))
        else:
            if not float(value) > 0:
                raise ValueError(f"two_scale_cross_entropy: {name} must be positive, got {value}")
            scalars.append(torch.tensor(float(value), dtype=dtype, device=input.device))
    return torch.stack(scalars)


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
    """Fused two-scale cross-entropy (Berlyand, Creese & Jabin 2021, eq. 13).

    Rows whose margin X_t - max_{j != t} X_j is below `eta` take the cross-entropy of (r1 / R) X,
    the others of (r2 / R) X, with R = `norm` (1 if None). r1, r2 and norm are floats or
    one-element tensors that may require grad (scales must be positive); their gradients
    (eq. 15) come from the same kernel as the input's, summed over rows in a fixed order.
    """
    scales = _scale_tensor([("r1", r1), ("r2", r2), ("norm", 1.0 if norm is None else norm)], input)

    def run_reference() -> torch.Tensor:
        return reference.two_scale_cross_entropy(input, target, r1, r2, eta, norm, weight, ignore_index, reduction)

    if _needs_reference(input, weight):
        return run_reference()
    canonical = canonicalize("two_scale_cross_entropy", input, target, weight, ignore_index, reduction)
    loss = row_loss("two_scale_cross_entropy", canonical.input, canonical.target, weight, [float(eta)],
                    ignore_index, canonical.reduction, tensor_params=scales)
    return loss.reshape(canonical.batch_shape) if canonical.reduction == 0 else loss


# Activations (lossext/activations.py).
from .activations import elu, gelu, hardtanh, leaky_relu, prelu, relu, selu, sigmoid, silu, softmax, swish, tanh  # noqa: E402

__all__ += ["elu", "gelu", "hardtanh", "leaky_relu", "prelu", "relu", "selu", "sigmoid", "silu", "softmax", "swish",
            "tanh"]
