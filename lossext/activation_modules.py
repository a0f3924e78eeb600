"""lossext.activations.modules under its earlier name."""

from .activations import modules as _modules
from .activations.modules import *  # noqa: F401,F403  (the names of its __all__)

__all__ = []
__all__ += _modules.__all__
