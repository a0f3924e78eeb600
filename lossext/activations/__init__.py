"""The activations, with fused forward and backward kernels: one module per layer, as lossext.losses.

    functional  the public functions (fused kernels, or the reference as fallback), re-exported here
    reference   pure-PyTorch references, written from the formulas
    modules     nn.Module wrappers (lossext.nn)
    ops         the op names, fake kernels and autograd formulas of torch.ops.lossext

`lossext.activations.gelu` is `lossext.gelu` is `lossext.functional.gelu`.
"""

from . import functional
from .functional import *  # noqa: F401,F403  (the names of functional.__all__)

__all__ = list(functional.__all__)
