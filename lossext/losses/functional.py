"""The loss functions: fused kernels when lossext._C has them for the input's device, the reference otherwise."""

import inspect
from typing import Callable, Optional, Sequence, Union

import torch

from .. import _extension
from .._checks import (canonicalize, check_alpha, check_hinge_params, check_label_smoothing, check_logit_softcap,
                       check_two_scale_eta, check_two_scale_scale, check_z_loss)
from .._dtensor import routes_dtensor
from .._dtypes import accumulation_dtype
from . import reference
from .ops import row_loss
from .reference import PARAMETER_FREE_LOSS_NAMES

# Every loss of the reference, fused.
__all__ = list(reference.__all__)


def _needs_reference(input: torch.Tensor, *others: Optional[torch.Tensor]) -> bool:
    """The reference runs when the kernels cannot: no extension for this device, or a
    gradient the kernels do not produce (for class weights or soft targets)."""
    if not _extension.use_extension(input.device):
        return True
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in others)  # canonicalize rejects the rest


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
    if canonical.input.shape[1] == 0:
        return reference.loss_without_classes(canonical)
    loss = row_loss(name, canonical.input, canonical.target, weight, params, canonical.ignore_index,
                    canonical.reduction)
    return loss.reshape(canonical.batch_shape) if canonical.reduction == 0 else loss


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
    """Fused softmax cross-entropy; a drop-in for torch.nn.functional.cross_entropy.

    input: (C,), (N, C) or (N, C, d1, ..., dk) logits. target: class indices
    (int64, int32 or uint8) of the input's shape without the class dimension,
    or class probabilities of the input's shape. z_loss: PaLM's z-loss, z * lse^2
    added per row (weighted by w_t for class indices, as the rest of the row), in
    the same kernel. logit_softcap: c > 0 takes the loss of c tanh(o / c) (Gemma 2's soft-capping; the
    z-loss then of its lse too), the cap applied as each logit is read, in the same kernel; None for none.
    """
    check_label_smoothing(label_smoothing)
    check_z_loss(z_loss)
    check_logit_softcap(logit_softcap)
    params = [label_smoothing, z_loss, 0.0 if logit_softcap is None else float(logit_softcap)]
    input, weight = reference.probability_target_dtypes(input, target, weight)

    def run_reference() -> torch.Tensor:
        return reference.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing, z_loss,
                                       logit_softcap)

    canonical = canonicalize("cross_entropy", input, target, weight, ignore_index, reduction,
                             allow_probabilities=True)
    if not canonical.probabilities:
        return class_index_loss("cross_entropy", input, target, weight, ignore_index, reduction, params,
                                run_reference)
    if _needs_reference(input, weight, target):
        return run_reference()
    if canonical.input.shape[1] == 0:
        return reference.loss_without_classes(canonical)
    loss = row_loss("cross_entropy_probabilities", canonical.input, canonical.target, weight, params,
                    canonical.ignore_index, canonical.reduction)
    return loss.reshape(canonical.batch_shape) if canonical.reduction == 0 else loss


def _scale_tensor(values, input: torch.Tensor) -> torch.Tensor:
    """Python floats or one-element tensors (which may require grad) as one 1-D tensor on input's device,
    in the kernels' accumulation dtype; gradients flow back to the tensors through torch.stack."""
    dtype = accumulation_dtype(input.dtype)
    scalars = []
    for name, value in values:
        check_two_scale_scale(name, value, input)
        if isinstance(value, torch.Tensor):
            scalars.append(value.reshape(()).to(dtype))
        else:
            scalars.append(torch.tensor(float(value), dtype=dtype, device=input.device))
    return torch.stack(scalars)


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
    """Fused two-scale cross-entropy (Berlyand, Creese & Jabin 2021, eq. 13).

    Rows whose margin X_t - max_{j != t} X_j is below `eta` take the cross-entropy of (r1 / R) X,
    the others of (r2 / R) X, with R = `norm` (1 if None). r1, r2 and norm are floats or
    one-element tensors that may require grad (scales must be positive); their gradients
    (eq. 15) come from the same kernel as the input's, summed over rows in a fixed order.
    """
    check_two_scale_eta(eta)
    scales = _scale_tensor([("r1", r1), ("r2", r2), ("norm", 1.0 if norm is None else norm)], input)

    def run_reference() -> torch.Tensor:
        return reference.two_scale_cross_entropy(input, target, r1, r2, eta, norm, weight, ignore_index, reduction)

    if _needs_reference(input, weight):
        return run_reference()
    canonical = canonicalize("two_scale_cross_entropy", input, target, weight, ignore_index, reduction)
    if canonical.input.shape[1] == 0:
        return reference.loss_without_classes(canonical)
    loss = row_loss("two_scale_cross_entropy", canonical.input, canonical.target, weight, [float(eta)],
                    canonical.ignore_index, canonical.reduction, tensor_params=scales)
    return loss.reshape(canonical.batch_shape) if canonical.reduction == 0 else loss


# The Janocha & Czarnecki (2017, Table 1) losses and the alpha-loss. Notation per row: o the
# logits, t the target class, y its one-hot vector, y^ = 2y - 1, p = softmax(o). Each takes
# input (N, C) or (N, C, d1, ..., dk) logits and class indices as cross_entropy does, its own
# parameters (passed to the kernel as `params`, in this order), then weight (per-class weights;
# the mean is weighted as in F.cross_entropy), ignore_index and reduction.


def _janocha_loss(name: str, input, target, params, weight, ignore_index, reduction, reference_fn):
    return class_index_loss(name, input, target, weight, ignore_index, reduction, params,
                            lambda: reference_fn(input, target, *params, weight=weight, ignore_index=ignore_index,
                                                 reduction=reduction))


def hinge(input: torch.Tensor, target: torch.Tensor, p: float = 1.0, margin: float = 0.5,
          weight: Optional[torch.Tensor] = None, ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Hinge^p: sum_j max(0, margin - y^_j o_j)^p for any real p >= 1 (the paper uses 1, 2, 3; margin 1/2)."""
    check_hinge_params(p, margin)
    return _janocha_loss("hinge", input, target, [p, margin], weight, ignore_index, reduction, reference.hinge)


def _parameter_free_loss(name: str) -> Callable[..., torch.Tensor]:
    """lossext.<name> for a loss without parameters of its own, documented by its reference's docstring."""
    reference_fn = getattr(reference, name)

    def loss(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
             ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
        return _janocha_loss(name, input, target, [], weight, ignore_index, reduction, reference_fn)

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = (f"{inspect.cleandoc(reference_fn.__doc__)}\n\nThe fused kernel where lossext._C has one for the "
                    f"input's device, lossext.reference.{name} otherwise.")
    return loss


for _name in PARAMETER_FREE_LOSS_NAMES:
    globals()[_name] = _parameter_free_loss(_name)


def alpha_loss(input: torch.Tensor, target: torch.Tensor, alpha: float, weight: Optional[torch.Tensor] = None,
               ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """alpha-loss (Sypherd et al.): alpha / (alpha - 1) * (1 - p_t^((alpha - 1) / alpha)) for alpha in (0, inf];
    cross-entropy at alpha = 1, 1 - p_t at alpha = inf."""
    check_alpha(alpha)
    return _janocha_loss("alpha_loss", input, target, [alpha], weight, ignore_index, reduction, reference.alpha_loss)


# A DTensor input sharded on its class dimension runs the vocabulary-parallel loss (lossext.distributed).
for _name in __all__:
    globals()[_name] = routes_dtensor(globals()[_name])
