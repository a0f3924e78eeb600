"""lossext.activations.reference under its earlier name (tests and bench import it as `ref`)."""

from .activations import reference as _reference
from .activations.reference import *  # noqa: F401,F403  (the names of its __all__)
from .activations.reference import channel_view  # noqa: F401  (the per-channel view the tests build parameters with)

__all__ = []
__all__ += _reference.__all__
