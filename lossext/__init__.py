"""lossext: fused C++/CUDA kernels for classification losses and activations, with pure-PyTorch references.

    import lossext
    loss = lossext.cross_entropy(logits, target)   # instead of F.cross_entropy

`lossext.backend()` says whether the compiled kernels ("extension") or the
reference ("reference") run; LOSSEXT_BACKEND=reference forces the reference.
The code lives in lossext.losses and lossext.activations; lossext.functional,
lossext.nn, lossext.reference and lossext.autograd gather their public names.
"""

import torch

from . import activations, autograd, functional, metrics, nn, reference
from ._extension import backend, cached_bytes, empty_cache, extension_loaded, set_backend
from .functional import *  # noqa: F401,F403  (every loss and activation function)
from .losses import row_statistics  # noqa: F401  (registers the block ops' fake kernels)
from .losses.ops import set_gradient_mode
from .nn import parameter_norm

if torch.distributed.is_available():
    from . import distributed  # noqa: F401  (the vocabulary-parallel losses; routes class-sharded DTensors)

__version__ = "0.1.0"

__all__ = [
    "activations",
    "autograd",
    "backend",
    "cached_bytes",
    "empty_cache",
    "extension_loaded",
    "functional",
    "metrics",
    "nn",
    "parameter_norm",
    "reference",
    "set_backend",
    "set_gradient_mode",
]
__all__ += functional.__all__
