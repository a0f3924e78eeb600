"""Where a loss whose input is a DTensor goes: lossext.distributed registers its route here on import
(lossext imports it), so that the losses need not import the distributed code they may never run."""

import functools
from typing import Callable, Optional

import torch

# lossext.distributed.dtensor.dtensor_loss(name, function, input, target, *args, **kwargs).
_route: Optional[Callable] = None


def set_route(route: Callable) -> None:
    global _route
    _route = route


@functools.lru_cache(maxsize=None)
def _dtensor_type():
    from torch.distributed.tensor import DTensor  # only once a tensor subclass comes: it costs ~0.6 s to import
    return DTensor


def is_dtensor(value) -> bool:
    return (type(value) is not torch.Tensor and isinstance(value, torch.Tensor) and torch.distributed.is_available()
            and isinstance(value, _dtensor_type()))


def routes_dtensor(function: Callable) -> Callable:
    """`function` (a loss of lossext.functional, taking input and target first), running the
    vocabulary-parallel path when input is a DTensor."""
    @functools.wraps(function)
    def loss(input, target, *args, **kwargs):
        if is_dtensor(input):
            if _route is None:
                raise NotImplementedError(f"lossext.{function.__name__}: a DTensor input needs torch.distributed")
            return _route(function.__name__, function, input, target, *args, **kwargs)
        return function(input, target, *args, **kwargs)

    return loss
