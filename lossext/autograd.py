"""Explicit torch.autograd.Function classes over the row-loss ops (lossext.losses.autograd)."""

from .losses import autograd as _losses
from .losses.autograd import *  # noqa: F401,F403  (the names of its __all__)

__all__ = []
__all__ += _losses.__all__
