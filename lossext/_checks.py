"""Argument checks shared by the kernels' wrappers and the references, and the (N, C) view of a loss call.

Every public loss goes through `canonicalize`, so both backends accept and
reject the same calls, with the exception types F.cross_entropy uses; the
activations' checks raise what torch.nn.functional raises for the same call.
"""

import math
import numbers
import operator
import warnings
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch

from ._values import values_are_readable

# ---- Losses. ----

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
_INDEX_DTYPES = (torch.int64, torch.int32, torch.uint8)
_INT64_RANGE = (-2**63, 2**63 - 1)


def reduction_code(reduction: str, name: str = "lossext") -> int:
    """The int the ops take for a torch-style reduction string; `name` prefixes the error."""
    if reduction == "elementwise_mean":  # as torch.nn._reduction.get_enum: deprecated, but still the mean
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.")
        return _REDUCTIONS["mean"]
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction: expected 'none', 'mean' or "
                         f"'sum'")
    return _REDUCTIONS[reduction]


def check_number(name: str, argument: str, value) -> float:
    """A non-tensor parameter given as a real number (TypeError otherwise, as torch.nn.functional's parsers):
    it is not differentiable, so a tensor that requires grad would silently get no gradient."""
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: {argument} must be a float, got a tensor: {argument} is not differentiable "
                        f"(pass float(tensor) to use its value)")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: {argument} must be a float, got {type(value).__name__}")
    return float(value)


def check_ignore_index(name: str, ignore_index) -> int:
    """ignore_index as the int64 the ops take: an int (or anything with __index__ but a bool, as F.cross_entropy),
    TypeError for other types, ValueError outside int64."""
    if isinstance(ignore_index, bool) or isinstance(ignore_index, float):
        raise TypeError(f"{name}: ignore_index must be an int, got {type(ignore_index).__name__}")
    try:
        index = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"{name}: ignore_index must be an int, got {type(ignore_index).__name__}") from None
    if not _INT64_RANGE[0] <= index <= _INT64_RANGE[1]:
        raise ValueError(f"{name}: ignore_index must fit in int64 [-2**63, 2**63 - 1], got {index}")
    return index


@dataclass
class Canonical:
    """A loss call reshaped for the row kernels."""

    input: torch.Tensor  # (N, C)
    target: torch.Tensor  # (N,) class indices, or (N, C) probabilities
    weight: Optional[torch.Tensor]
    reduction: int
    batch_shape: Tuple[int, ...]  # shape of the unreduced loss
    probabilities: bool
    ignore_index: int = -100  # as an int (check_ignore_index)


def is_probability_target(input: torch.Tensor, target: torch.Tensor) -> bool:
    return input.dim() >= 1 and target.shape == input.shape


def canonicalize(
    name: str,
    input: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    ignore_index: int,
    reduction: str,
    allow_probabilities: bool = False,
) -> Canonical:
    """Check a call the way F.cross_entropy does and flatten it to (N, C) rows.

    Inputs may be (C,), (N, C) or (N, C, d1, ..., dk); the class dimension is 1
    (0 for a 1-D input). K-dimensional inputs are moved to (N * d1 * ... * dk, C).
    """
    red = reduction_code(reduction, name)
    ignore_index = check_ignore_index(name, ignore_index)
    if not isinstance(input, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{name}: input and target must be tensors, got {type(input).__name__} and "
                        f"{type(target).__name__}")
    if input.dim() == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-dim tensor")
    if not input.is_floating_point():
        raise NotImplementedError(f"{name}: input must be a floating-point tensor, got {input.dtype}")
    if target.device != input.device:
        raise RuntimeError(f"{name}: target must be on the input's device ({input.device}), got {target.device}")
    class_dim = 0 if input.dim() == 1 else 1
    num_classes = input.shape[class_dim]

    if weight is not None:
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{name}: weight must be a tensor or None, got {type(weight).__name__}")
        if weight.device != input.device:
            raise RuntimeError(f"{name}: weight must be on the input's device ({input.device}), got {weight.device}")
        if weight.dim() != 1 or weight.numel() != num_classes:
            raise RuntimeError(
                f"{name}: weight tensor should be defined either for all {num_classes} classes or no classes "
                f"but got weight tensor of shape: {list(weight.shape)}"
            )
        if weight.dtype != input.dtype:
            raise RuntimeError(f"{name}: weight must have the input's dtype ({input.dtype}), got {weight.dtype}")

    probabilities = allow_probabilities and is_probability_target(input, target)
    if probabilities:
        if not target.is_floating_point():
            raise RuntimeError(
                f"{name}: Expected floating point type for target with class probabilities, got {target.dtype}"
            )
        if ignore_index >= 0:
            raise RuntimeError(f"{name}: ignore_index is not supported for floating point target")
    else:
        if target.dtype not in _INDEX_DTYPES:
            if allow_probabilities:
                raise RuntimeError(f"{name}: target must hold class indices as int64, int32 or uint8, or class "
                                   f"probabilities of the input's shape {list(input.shape)}; got {target.dtype} "
                                   f"of shape {list(target.shape)}")
            raise RuntimeError(f"{name}: target must hold class indices as int64, int32 or uint8 ({name} takes no "
                               f"class probabilities), got {target.dtype} of shape {list(target.shape)}")
        expected = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1 :])
        if tuple(target.shape) != expected:
            if input.dim() == 2 and target.dim() == 1:
                raise ValueError(
                    f"{name}: Expected input batch_size ({input.shape[0]}) to match target batch_size "
                    f"({target.shape[0]})."
                )
            raise RuntimeError(f"{name}: Expected target size {list(expected)}, got {list(target.shape)}")

    if input.dim() == 1:
        rows = input.unsqueeze(0)
        flat_target = target.unsqueeze(0)
        batch_shape: Tuple[int, ...] = ()
    elif input.dim() == 2:
        rows, flat_target = input, target
        batch_shape = (input.shape[0],)
    else:
        rows = input.movedim(1, -1).reshape(-1, num_classes)
        flat_target = target.movedim(1, -1).reshape(-1, num_classes) if probabilities else target.reshape(-1)
        batch_shape = (input.shape[0],) + tuple(input.shape[2:])
    return Canonical(rows, flat_target, weight, red, batch_shape, probabilities, ignore_index)


def check_target_range(target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """IndexError for a class index outside [0, C), as F.nll_loss; ignored rows are skipped.

    Only where the values are free to read (lossext._values): on CUDA the gather's device-side
    assert reports a bad index, as F.nll_loss's does; meta and fake tensors have no values.
    """
    if not values_are_readable(target):
        return
    valid = target[target.long() != ignore_index].long()
    if valid.numel() and (bool((valid < 0).any()) or bool((valid >= num_classes).any())):
        bad = valid[(valid < 0) | (valid >= num_classes)][0].item()
        raise IndexError(f"Target {bad} is out of bounds: a class index must be in [0, {num_classes}) for "
                         f"{num_classes} classes, or ignore_index ({ignore_index})")


def check_label_smoothing(label_smoothing: float) -> None:
    """In [0, 1], the range F.cross_entropy documents (which rejects above 1 and ignores a value <= 0 or NaN:
    here those raise too, as the value would otherwise be silently replaced by 0)."""
    value = check_number("cross_entropy", "label_smoothing", label_smoothing)
    if not 0.0 <= value <= 1.0:
        raise RuntimeError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")


def check_z_loss(z_loss: float) -> None:
    if not (math.isfinite(z_loss) and z_loss >= 0.0):
        raise ValueError(f"cross_entropy: z_loss must be a finite number >= 0, got {z_loss}")


def check_logit_softcap(logit_softcap: Optional[float]) -> None:
    """None (no cap) or a positive, finite cap c: the logits become c tanh(o / c) (Gemma 2)."""
    if logit_softcap is None:
        return
    if not (math.isfinite(check_number("cross_entropy", "logit_softcap", logit_softcap)) and logit_softcap > 0.0):
        raise ValueError(f"cross_entropy: logit_softcap must be None or a finite number > 0, got {logit_softcap}")


def check_hinge_params(p: float, margin: float) -> None:
    if not (math.isfinite(check_number("hinge", "p", p)) and p >= 1.0):
        raise ValueError(f"hinge: p must be a finite real number >= 1, got {p}")
    if not math.isfinite(check_number("hinge", "margin", margin)):
        raise ValueError(f"hinge: margin must be finite, got {margin}")


def check_alpha(alpha: float) -> None:
    if not check_number("alpha_loss", "alpha", alpha) > 0.0:  # also rejects NaN; inf is allowed
        raise ValueError(f"alpha_loss: alpha must be > 0 (or inf), got {alpha}")


def check_two_scale_scale(name: str, value: Union[float, torch.Tensor], input: torch.Tensor) -> None:
    """r1, r2 or norm of two_scale_cross_entropy: a positive finite float, or a one-element floating-point
    tensor on the input's device. A tensor's value is not read: that would be a device sync on CUDA, so the
    same program would raise on one device and not the other; a learnable scale that turns negative is
    computed as it is (the kernels take a negative scale's exp sums at the row min)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"two_scale_cross_entropy: {name} must be a float or a one-element tensor, "
                             f"got shape {tuple(value.shape)}")
        if value.device != input.device:
            raise RuntimeError(f"two_scale_cross_entropy: {name} must be on the input's device "
                               f"({input.device}), got {value.device}")
        if not value.is_floating_point():
            raise TypeError(f"two_scale_cross_entropy: {name} must be a floating-point tensor, got {value.dtype}")
        return
    number = check_number("two_scale_cross_entropy", name, value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"two_scale_cross_entropy: {name} must be positive and finite, got {number}")


def check_two_scale_eta(eta: float) -> None:
    """The margin threshold eta of two_scale_cross_entropy: any float but NaN."""
    if math.isnan(check_number("two_scale_cross_entropy", "eta", eta)):
        raise ValueError("two_scale_cross_entropy: eta must be a number, got NaN")


def check_two_scale_params(r1, r2, eta: float, norm, input: torch.Tensor) -> None:
    """The scales (check_two_scale_scale; norm None means 1) and eta (check_two_scale_eta)."""
    for name, value in (("r1", r1), ("r2", r2), ("norm", 1.0 if norm is None else norm)):
        check_two_scale_scale(name, value, input)
    check_two_scale_eta(eta)


# ---- Activations. ----

ACTIVATION_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
GELU_APPROXIMATIONS = ("none", "tanh")


def check_activation_input(name: str, input: torch.Tensor) -> None:
    """A tensor of a dtype the activation kernels have."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"lossext.{name}: input must be a tensor, got {type(input).__name__}")
    if input.dtype not in ACTIVATION_DTYPES:  # NotImplementedError, as torch.nn.functional's kernels
        raise NotImplementedError(f"lossext.{name}: input must be float32, float64, float16 or bfloat16, got "
                                  f"{input.dtype}")


def check_not_inplace(name: str, inplace: bool) -> None:
    """The torch.nn.functional signatures take `inplace`; only False is supported."""
    if inplace:
        raise NotImplementedError(f"lossext.{name}: inplace=True is not supported; call it with inplace=False")


def check_channel_parameter(name: str, argument: str, input: torch.Tensor, parameter: torch.Tensor) -> None:
    """PReLU's weight and Swish's beta: one value or one per channel of dim 1, in the input's dtype and device."""
    if parameter.dtype != input.dtype:
        raise TypeError(f"lossext.{name}: {argument} must have the input's dtype ({input.dtype}), "
                        f"got {parameter.dtype}")
    if parameter.device != input.device:
        raise RuntimeError(f"lossext.{name}: {argument} must be on the input's device ({input.device}), "
                           f"got {parameter.device}")
    if parameter.dim() > 1:
        raise RuntimeError(f"lossext.{name}: {argument} must be a scalar or a 1-D tensor, got shape "
                           f"{tuple(parameter.shape)}")
    channels = input.shape[1] if input.dim() >= 2 else 1
    if parameter.numel() != 1 and parameter.numel() != channels:
        raise RuntimeError(f"lossext.{name}: {argument} must have one value or one per channel (dim 1 of the "
                           f"input, size {channels}), got {parameter.numel()} values")


def check_swish_beta(input: torch.Tensor, beta: Union[float, torch.Tensor]) -> None:
    """A float, or a tensor checked as a channel parameter."""
    if isinstance(beta, torch.Tensor):
        check_channel_parameter("swish", "beta", input, beta)
    elif not isinstance(beta, (int, float)):
        raise TypeError(f"lossext.swish: beta must be a float or a tensor, got {type(beta).__name__}")


def check_gelu_approximate(approximate: str) -> None:
    if approximate not in GELU_APPROXIMATIONS:
        raise RuntimeError(f"lossext.gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def check_hardtanh_bounds(min_val: float, max_val: float) -> None:
    low, high = check_number("lossext.hardtanh", "min_val", min_val), check_number("lossext.hardtanh", "max_val",
                                                                                  max_val)
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"lossext.hardtanh: min_val and max_val must be numbers, got min_val={min_val}, "
                         f"max_val={max_val}")
    if low > high:
        raise ValueError(f"lossext.hardtanh: min_val cannot be greater than max_val, got min_val={min_val}, "
                         f"max_val={max_val}")
