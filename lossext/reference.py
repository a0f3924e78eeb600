"""Pure-PyTorch references of every loss (lossext.losses.reference) and activation (lossext.activations.reference):
the ground truth in tests and the fallback when lossext._C is missing."""

from .activations import reference as _activations
from .activations.reference import *  # noqa: F401,F403  (the names of its __all__)
from .losses import reference as _losses
from .losses.reference import *  # noqa: F401,F403  (the names of its __all__)

__all__ = []
__all__ += _losses.__all__
__all__ += _activations.__all__
