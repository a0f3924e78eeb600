"""The public functions, every loss (lossext.losses.functional) and activation (lossext.activations.functional):
fused kernels where lossext._C has them for the input's device, the pure-PyTorch reference otherwise."""

from .activations import functional as _activations
from .activations.functional import *  # noqa: F401,F403  (the names of its __all__)
from .heads.linear import linear_cross_entropy, linear_evaluate, linear_loss
from .losses import functional as _losses
from .losses.functional import *  # noqa: F401,F403  (the names of its __all__)

__all__ = []
__all__ += _losses.__all__
__all__ += _activations.__all__
__all__ += ["linear_cross_entropy", "linear_evaluate", "linear_loss"]
