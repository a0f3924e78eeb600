"""lossext: fused C++/CUDA kernels for classification losses, with pure-PyTorch references.

    import lossext
    loss = lossext.cross_entropy(logits, target)   # instead of F.cross_entropy

`lossext.backend()` says whether the compiled kernels ("extension") or the
reference ("reference") run; LOSSEXT_BACKEND=reference forces the reference.
"""

from . import _extension, _ops  # noqa: F401  (_ops registers fake kernels and autograd formulas)
from . import autograd, functional, metrics, nn, reference
from ._extension import backend, extension_loaded, set_backend
from ._ops import set_gradient_mode
from .functional import (
    alpha_loss,
    cauchy_schwarz,
    chebyshev,
    cross_entropy,
    expectation,
    hinge,
    l1,
    l2,
    regularized_expectation,
    squared_log,
    tanimoto,
    two_scale_cross_entropy,
)
from .nn import parameter_norm

__version__ = "0.1.0"

__all__ = [
    "alpha_loss",
    "autograd",
    "backend",
    "cauchy_schwarz",
    "chebyshev",
    "cross_entropy",
    "expectation",
    "extension_loaded",
    "functional",
    "hinge",
    "l1",
    "l2",
    "metrics",
    "nn",
    "parameter_norm",
    "reference",
    "regularized_expectation",
    "set_backend",
    "set_gradient_mode",
    "squared_log",
    "tanimoto",
    "two_scale_cross_entropy",
]

# Activations with fused forward and backward kernels (lossext/activations.py).
from . import activations  # noqa: E402  (registers the activation ops' fake kernels and autograd formulas)
from .activations import elu, gelu, hardtanh, leaky_relu, prelu, relu, selu, sigmoid, silu, softmax, swish, tanh  # noqa: E402

__all__ += activations.__all__ + ["activations"]

# The fused classifier head, linear layer + loss without the logits (lossext/_linear.py).
from ._linear import linear_cross_entropy, linear_evaluate, linear_loss  # noqa: E402

__all__ += ["linear_cross_entropy", "linear_evaluate", "linear_loss"]
