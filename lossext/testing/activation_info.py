"""The activations as the tests see them: one ActivationInfo per activation and parameter choice, in ACTIVATIONS.

An entry names the activation (`lossext.<op>`, `lossext.reference.<op>`, the ops
`torch.ops.lossext.<op>_forward` and `_backward`), its keyword arguments, PyTorch's counterpart,
the kinks that samples keep away from, what its backward reads, and how that reading moves the
gradient's rounding (tests/test_activations.py).
"""

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F

import lossext


def composed_swish(input: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """x sigmoid(beta x) in PyTorch ops, beta one value or one per channel (dim 1): Swish's counterpart."""
    shape = () if beta.numel() == 1 else (1, -1) + (1,) * (input.dim() - 2)
    return input * torch.sigmoid(beta.reshape(shape) * input)


@dataclass(frozen=True)
class ActivationInfo:
    name: str  # the op's name, or it with what sets this parameter choice apart
    op: str  # lossext.<op>, lossext.reference.<op>, the ops <op>_forward and <op>_backward
    native: Callable[..., torch.Tensor]  # PyTorch's counterpart, taking the same arguments
    # Keyword arguments after the input (and the parameter), in the order the ops take them.
    kwargs: Mapping[str, object] = field(default_factory=dict)
    kind: str = "elementwise"  # "channel": takes a learnable (C,) or one-value parameter; "softmax": a dim
    kinks: Tuple[float, ...] = ()  # where the derivative jumps: samples keep 1e-2 away
    saves: Tuple[str, ...] = ("input",)  # what the autograd formula saves: "input", "output", "parameter"
    # max |d(dy/dx)/dy| of the op's backward from its output, the same for every parameter choice of the
    # op (0: only the output's sign or bounds matter, which rounding keeps): conftest.output_rounding_atol.
    # sigmoid: d/dy y (1 - y) = 1 - 2y; tanh: d/dy (1 - y^2) = -2y. (ELU and SELU save the input: from the
    # output their slope y + scale alpha cancels.)
    output_sensitivity: float = 0.0
    tolerance: str = "activation"  # its row in the tolerance table (tests/conftest.py)

    @property
    def saved_is_output(self) -> bool:
        return self.saves[0] == "output"

    @property
    def op_args(self) -> Tuple[object, ...]:
        return tuple(self.kwargs.values())

    def bind(self, fn: Optional[Callable] = None) -> Callable[..., torch.Tensor]:
        """fn (default lossext.<op>) with this entry's keyword arguments: (input, [parameter], **more)."""
        fn = fn or getattr(lossext, self.op)
        return lambda input, *parameter, **more: fn(input, *parameter, **self.kwargs, **more)

    @property
    def function(self) -> Callable[..., torch.Tensor]:
        return self.bind()

    @property
    def torch_function(self) -> Callable[..., torch.Tensor]:
        return self.bind(self.native)

    @property
    def reference(self) -> Callable[..., torch.Tensor]:
        return self.bind(getattr(lossext.reference, self.op))


ACTIVATIONS: Tuple[ActivationInfo, ...] = (
    ActivationInfo("relu", "relu", F.relu, kinks=(0.0,), saves=("output",)),
    ActivationInfo("leaky_relu", "leaky_relu", F.leaky_relu, dict(negative_slope=0.2), kinks=(0.0,),
                   saves=("output",)),
    # A negative slope flips the output's sign: the backward reads the input.
    ActivationInfo("leaky_relu_negative_slope", "leaky_relu", F.leaky_relu, dict(negative_slope=-0.3),
                   kinks=(0.0,)),
    ActivationInfo("elu", "elu", F.elu, dict(alpha=1.0), kinks=(0.0,)),
    ActivationInfo("elu_alpha", "elu", F.elu, dict(alpha=0.5), kinks=(0.0,)),
    ActivationInfo("elu_negative_alpha", "elu", F.elu, dict(alpha=-0.7), kinks=(0.0,)),
    ActivationInfo("selu", "selu", F.selu, kinks=(0.0,)),
    ActivationInfo("silu", "silu", F.silu),
    ActivationInfo("gelu", "gelu", F.gelu, dict(approximate="none")),
    ActivationInfo("gelu_tanh", "gelu", F.gelu, dict(approximate="tanh")),
    ActivationInfo("sigmoid", "sigmoid", torch.sigmoid, saves=("output",), output_sensitivity=1.0),
    ActivationInfo("tanh", "tanh", torch.tanh, saves=("output",), output_sensitivity=2.0),
    ActivationInfo("hardtanh", "hardtanh", F.hardtanh, dict(min_val=-1.0, max_val=1.0), kinks=(-1.0, 1.0),
                   saves=("output",)),
    ActivationInfo("hardtanh_bounds", "hardtanh", F.hardtanh, dict(min_val=-0.5, max_val=2.0), kinks=(-0.5, 2.0),
                   saves=("output",)),
    ActivationInfo("prelu", "prelu", F.prelu, kind="channel", kinks=(0.0,), saves=("input", "parameter")),
    ActivationInfo("swish", "swish", composed_swish, kind="channel", kinks=(0.0,), saves=("input", "parameter")),
    ActivationInfo("softmax", "softmax", F.softmax, kind="softmax", saves=("output",), output_sensitivity=2.0),
)
ACTIVATION_BY_NAME: Mapping[str, ActivationInfo] = {activation.name: activation for activation in ACTIVATIONS}


def of_kind(kind: str) -> Tuple[ActivationInfo, ...]:
    return tuple(activation for activation in ACTIVATIONS if activation.kind == kind)
