"""The vocabulary-parallel losses as modules, which exchange the processes' class counts once."""

from typing import Callable, List, Optional, Union

import torch
import torch.distributed as dist

from ..losses.binding import bind_loss_arguments, resolve_loss
from .losses import exchange_class_sizes, vocab_parallel_loss

__all__ = ["VocabParallelLoss"]


class VocabParallelLoss(torch.nn.Module):
    """lossext.distributed.vocab_parallel_loss(loss, input, target, group=group, **loss_kwargs) as a module.

    The first forward exchanges every process's number of classes (one all_gather) and keeps them, so
    later steps run only the loss's two all-reduces; an input with another number of classes raises
    (the split of a model's head does not change; make a new module if it does). loss_kwargs are the
    loss's own arguments (hinge's p, label_smoothing, this process's class weights, ...), stored as
    attributes; nn.Parameters among them (learnable two-scale scales) are registered and trained.
    """

    def __init__(self, loss: Union[str, Callable], group: Optional[dist.ProcessGroup] = None,
                 **loss_kwargs) -> None:
        super().__init__()
        self.loss_name, function = resolve_loss(loss, "VocabParallelLoss")
        arguments = bind_loss_arguments(self.loss_name, function, loss_kwargs, "VocabParallelLoss")
        self.loss_argument_names = tuple(arguments)
        self.group = group
        self.class_sizes: Optional[List[int]] = None
        for key, value in arguments.items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
                self.register_buffer(key, value)
            else:
                setattr(self, key, value)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        local_classes = input.shape[0 if input.dim() == 1 else 1]
        if self.class_sizes is None:
            self.class_sizes = exchange_class_sizes(local_classes, self.group, input.device)
        elif self.class_sizes[dist.get_rank(self.group)] != local_classes:
            raise ValueError(f"VocabParallelLoss: this process's input has {local_classes} classes, but the first "
                             f"call had {self.class_sizes[dist.get_rank(self.group)]}; make a new module for a new "
                             f"split")
        kwargs = {key: getattr(self, key) for key in self.loss_argument_names}
        return vocab_parallel_loss(self.loss_name, input, target, group=self.group, class_sizes=self.class_sizes,
                                   **kwargs)

    def extra_repr(self) -> str:
        kwargs = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.loss_argument_names
                           if not isinstance(getattr(self, key), torch.Tensor))
        return f"loss={self.loss_name!r}, {kwargs}, class_sizes={self.class_sizes}"
