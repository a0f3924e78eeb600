"""Pure-PyTorch references of every loss (lossext.losses.reference) and activation (lossext.activations.reference):
the ground truth in tests and the fallback when lossext._C is missing."""

from .activations import reference as _activations
from .activations.reference import *  # noqa: F401,F403  (the names of its __all__)
from .heads.linear import reference_linear_cross_entropy as linear_cross_entropy
from .heads.linear import reference_linear_evaluate as linear_evaluate
from .heads.linear import reference_linear_loss as linear_loss
from .losses import reference as _losses
from .losses.reference import *  # noqa: F401,F403  (the names of its __all__)

__all__ = []
__all__ += _losses.__all__
__all__ += _activations.__all__
__all__ += ["linear_cross_entropy", "linear_evaluate", "linear_loss"]
