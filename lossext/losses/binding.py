"""A loss chosen by name, bound to its own arguments, as the row-loss ops take them.

The fused head (lossext.heads.linear) and the vocabulary-parallel losses (lossext.distributed) run any
lossext loss from its name (or function) and its keyword arguments; this module turns those into the
op's name, `params` (the loss's scalars, in the order its op takes them) and `tensor_params` (its
learnable scalars), exactly as lossext.functional passes them.
"""

import inspect
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from .._checks import check_alpha, check_hinge_params, check_label_smoothing, check_logit_softcap, check_z_loss
from . import functional

__all__ = ["bind_loss_arguments", "loss_functions", "op_arguments", "resolve_loss"]

# The arguments a caller supplies itself (the logits and the target), not the loss's own.
_DATA_ARGUMENTS = ("input", "target")
# The arguments every class-index loss takes besides its own parameters.
_COMMON_ARGUMENTS = ("input", "target", "weight", "ignore_index", "reduction")


def loss_functions() -> Dict[str, Callable]:
    """Every lossext loss by name: the functions of lossext.functional taking (input, target, ...)."""
    losses = {}
    for name in functional.__all__:
        function = getattr(functional, name)
        if list(inspect.signature(function).parameters)[:2] == list(_DATA_ARGUMENTS):
            losses[name] = function
    return losses


def resolve_loss(loss: Union[str, Callable], caller: str) -> Tuple[str, Callable]:
    """(name, lossext.functional function) of `loss`, a name or the function itself."""
    losses = loss_functions()
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", None)
    if name not in losses or (not isinstance(loss, str) and loss is not losses[name]):
        raise ValueError(f"{caller}: loss must be one of {sorted(losses)} (a name or the lossext function), "
                         f"got {loss!r}")
    return name, losses[name]


def bind_loss_arguments(name: str, function: Callable, loss_kwargs: dict, caller: str) -> dict:
    """The loss's own keyword arguments with its defaults filled in (TypeError for unknown ones)."""
    signature = inspect.signature(function)
    own = [parameter for key, parameter in signature.parameters.items() if key not in _DATA_ARGUMENTS]
    try:
        bound = signature.replace(parameters=own).bind(**loss_kwargs)
    except TypeError as error:
        raise TypeError(f"{caller}: {name}: {error}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


# Checks of a loss's own scalars, raised as lossext.<loss> raises them (ValueError).
_PARAM_CHECKS = {
    "cross_entropy": lambda args: (check_label_smoothing(args["label_smoothing"]), check_z_loss(args["z_loss"]),
                                   check_logit_softcap(args["logit_softcap"])),
    "hinge": lambda args: check_hinge_params(args["p"], args["margin"]),
    "alpha_loss": lambda args: check_alpha(args["alpha"]),
}


def _own_parameters(function: Callable) -> List[inspect.Parameter]:
    """A loss function's own parameters (hinge's p and margin, alpha_loss's alpha), in the order its op takes them."""
    return [parameter for parameter in inspect.signature(function).parameters.values()
            if parameter.name not in _COMMON_ARGUMENTS]


def op_arguments(name: str, function: Callable, args: dict, input: torch.Tensor,
                 probabilities: bool) -> Tuple[str, List[float], Optional[torch.Tensor]]:
    """(op name, params, tensor_params) of lossext.<name> called with `args`, as lossext.functional passes them."""
    _PARAM_CHECKS.get(name, lambda args: None)(args)
    if name == "two_scale_cross_entropy":
        norm = 1.0 if args["norm"] is None else args["norm"]
        scales = functional._scale_tensor([("r1", args["r1"]), ("r2", args["r2"]), ("norm", norm)], input)
        return name, [float(args["eta"])], scales
    # An option that is off (None: cross-entropy's logit_softcap) is the op's 0.
    params = [0.0 if args[parameter.name] is None else float(args[parameter.name])
              for parameter in _own_parameters(function)]
    return ("cross_entropy_probabilities" if probabilities else name), params, None
