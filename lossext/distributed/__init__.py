"""lossext's losses with their classes split over processes (torch.distributed: gloo on CPU, NCCL on GPU).

    # each process holds logits[:, offset:offset + V_local] and the whole target
    loss = lossext.distributed.cross_entropy(local_logits, target, label_smoothing=0.1)
    loss = lossext.distributed.hinge(local_logits, target, p=2.0, group=tp_group)

Every loss of lossext.functional is here with its own arguments plus `group` (None: the default
process group) and `class_sizes` (every process's number of classes in rank order; None: exchanged,
one all_gather per call; the module VocabParallelLoss exchanges them once). Each forward costs one all-reduce MAX and one all-reduce SUM of O(N)
statistics whatever V (lossext.distributed.losses says which), backward none. A class-sharded DTensor
passed to a lossext loss runs the same path (lossext.distributed.dtensor); the fused linear head with
its weight split by classes is `vocab_parallel_linear_loss`.
"""

import inspect
from typing import Callable, Optional, Sequence

import torch.distributed as dist

from .. import _dtensor
from ..losses.binding import loss_functions
from .dtensor import dtensor_loss
from .linear import vocab_parallel_linear_loss
from .losses import class_range, exchange_class_sizes, global_statistics, vocab_parallel_loss
from .modules import VocabParallelLoss

__all__ = ["VocabParallelLoss", "class_range", "exchange_class_sizes", "global_statistics",
           "vocab_parallel_linear_loss", "vocab_parallel_loss"]

_SHARDING_PARAMETERS = (
    inspect.Parameter("group", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Optional[dist.ProcessGroup]),
    inspect.Parameter("class_sizes", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Optional[Sequence[int]]),
)


def _vocab_parallel_function(name: str, function: Callable) -> Callable:
    """lossext.distributed.<name>: lossext.<name>'s signature plus group and class_sizes."""
    signature = inspect.signature(function)
    signature = signature.replace(parameters=list(signature.parameters.values()) + list(_SHARDING_PARAMETERS))

    def sharded(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        return vocab_parallel_loss(name, arguments.pop("input"), arguments.pop("target"),
                                   group=arguments.pop("group", None),
                                   class_sizes=arguments.pop("class_sizes", None), **arguments)

    sharded.__name__ = sharded.__qualname__ = name
    sharded.__module__ = __name__
    sharded.__signature__ = signature
    sharded.__doc__ = (f"lossext.{name} of logits whose classes are split over the processes of `group`: input is "
                       f"this process's (..., V_local, ...) slice, target the whole class-index target, weight "
                       f"this process's slice of the class weights; see vocab_parallel_loss.\n\n"
                       f"lossext.{name}: {function.__doc__}")
    return sharded


for _name, _function in loss_functions().items():
    globals()[_name] = _vocab_parallel_function(_name, _function)
    __all__.append(_name)

_dtensor.set_route(dtensor_loss)
