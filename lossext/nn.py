"""nn.Module wrappers of every loss (lossext.losses.modules) and activation (lossext.activations.modules),
mirroring torch.nn, and parameter_norm."""

from .activations import modules as _activations
from .activations.modules import *  # noqa: F401,F403  (the names of its __all__)
from .heads.linear import LinearCrossEntropyLoss, LinearLoss
from .losses import modules as _losses
from .losses.modules import *  # noqa: F401,F403  (the names of its __all__)

__all__ = []
__all__ += _losses.__all__
__all__ += _activations.__all__
__all__ += ["LinearCrossEntropyLoss", "LinearLoss"]
