"""A lossext loss of a DTensor: logits sharded on their class dimension run the vocabulary-parallel path.

    with torch.distributed.tensor.parallel.loss_parallel():   # PyTorch's way, cross-entropy only
        loss = F.cross_entropy(logits, target)
    loss = lossext.cross_entropy(logits, target)            # lossext: any loss, no context needed

`logits` is a DTensor on a 1-D device mesh placed `Shard(class_dim)` (the class dimension: 1, or 0
for a 1-D input), its classes split as DTensor splits them (torch.chunk's sizes); the target a
replicated DTensor or a plain tensor, the class weight replicated (whole), as loss_parallel takes them.
The result is a replicated DTensor, as loss_parallel's; backward gives the logits a gradient sharded
as they are. A replicated DTensor runs the loss on its local tensor.
"""

import inspect
from typing import Callable, List

from .._dtensor import is_dtensor
from .losses import vocab_parallel_loss

__all__ = ["shard_sizes"]  # dtensor_loss is the losses' route (lossext._dtensor), not called directly


def shard_sizes(classes: int, processes: int) -> List[int]:
    """Every process's number of classes under DTensor's Shard: torch.chunk's, ceil(V / W) each, the last ones
    shorter (or empty)."""
    chunk = -(-classes // processes)
    return [max(0, min(chunk, classes - rank * chunk)) for rank in range(processes)]


def _local(value):
    return value.to_local() if is_dtensor(value) else value


def dtensor_loss(name: str, function: Callable, input, target, *args, **kwargs):
    """lossext.<name> (`function`, its arguments after input and target) of the DTensor `input`: a
    replicated DTensor."""
    # Imported here: a process that never makes a DTensor does not pay for torch.distributed.tensor.
    from torch.distributed.tensor import DTensor, Replicate

    arguments = inspect.signature(function).bind(input, target, *args, **kwargs).arguments
    arguments.pop("input"), arguments.pop("target")
    mesh = input.device_mesh
    if mesh.ndim != 1:
        raise NotImplementedError(f"lossext.{name}: a DTensor input must live on a 1-D device mesh, got "
                                  f"{mesh.ndim}-D")
    placement = input.placements[0]
    class_dim = 0 if input.dim() == 1 else 1
    for key, value in arguments.items():
        if isinstance(value, DTensor) and not all(p.is_replicate() for p in value.placements):
            raise NotImplementedError(f"lossext.{name}: {key} must be a replicated DTensor or a tensor, got "
                                      f"placements {value.placements}")
    if isinstance(target, DTensor) and not (target.placements[0].is_replicate() or
                                            (target.shape == input.shape and target.placements == input.placements)):
        raise NotImplementedError(f"lossext.{name}: target must be a replicated DTensor or a tensor (or class "
                                  f"probabilities placed as the input), got placements {target.placements}")
    if placement.is_replicate():
        local_arguments = {key: _local(value) for key, value in arguments.items()}
        value = function(input.to_local(), _local(target), **local_arguments)
        return DTensor.from_local(value, mesh, [Replicate()], run_check=False)
    if not (placement.is_shard() and placement.dim % input.dim() == class_dim):
        raise NotImplementedError(f"lossext.{name}: a DTensor input must be sharded on its class dimension "
                                  f"(Shard({class_dim})) or replicated, got placements {input.placements}")
    sizes = shard_sizes(input.shape[class_dim], mesh.size())
    rank = mesh.get_local_rank()
    offset = sum(sizes[:rank])
    classes = slice(offset, offset + sizes[rank])
    weight = _local(arguments.get("weight"))
    if weight is not None:
        if isinstance(arguments["weight"], DTensor):
            weight = arguments["weight"].full_tensor()
        arguments["weight"] = weight[classes]
    if isinstance(target, DTensor) and target.placements[0].is_shard():
        target = target.to_local()  # class probabilities sharded as the logits
    else:
        target = _local(target)
        if target.shape == input.shape:  # whole class probabilities: this process's classes
            target = target.narrow(class_dim, offset, sizes[rank])
    value = vocab_parallel_loss(name, input.to_local(), target, group=mesh.get_group(), class_sizes=sizes,
                                **{key: _local(value) for key, value in arguments.items()})
    return DTensor.from_local(value, mesh, [Replicate()], run_check=False)
