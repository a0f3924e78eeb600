"""The activation family: `x.grad = None; y = act(x); y.backward(g)` for every lossext activation.

Implementations: native (torch.nn.functional or torch.<name>; for swish,
which has no native op, the composition x * torch.sigmoid(beta * x)),
reference (lossext.reference, eager), compiled_reference (torch.compile of
it, one graph) and lossext (the fused kernels).

Effective GB/s counts the least traffic a forward+backward can have: read x
and write y, then read g and one saved tensor and write dx: 5 tensors of the
input's size.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

import lossext
from bench.harness import CaseSetup, Shape, compiled, fused_runs_on
from bench.measure import user_step

# 2^26 elements each.
ELEMENTWISE_SHAPE: Shape = (1 << 13, 1 << 13)
CHANNEL_SHAPE: Shape = (64, 256, 64, 64)  # (N, C, H, W) for PReLU and Swish with per-channel parameters
SOFTMAX_SHAPE: Shape = (1 << 16, 1 << 10)
# Tensors a step reads or writes in full: x, y, g, one saved tensor, dx.
TENSORS_MOVED = 5


def per_channel(parameter: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """A (C,) parameter shaped to broadcast along dim 1 of `input`; a single value as a scalar."""
    if parameter.numel() == 1:
        return parameter.reshape(())
    return parameter.reshape((1, -1) + (1,) * (input.dim() - 2))


def composed_swish(input: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    return input * torch.sigmoid(per_channel(beta, input) * input)


@dataclass(frozen=True)
class ActivationCase:
    name: str  # the case's name in the CSV (several cases time one function with other arguments)
    function: str  # lossext.<function> and lossext.reference.<function>
    native: Callable[..., torch.Tensor]  # called with the same arguments
    kwargs: Mapping = field(default_factory=dict)
    parameter: Optional[str] = None  # a learnable second argument: "shared" (one value) or "channel" (dim 1's size)
    shape: Shape = ELEMENTWISE_SHAPE

    def parameter_size(self, shape: Shape) -> int:
        return {None: 0, "shared": 1, "channel": shape[1]}[self.parameter]


CASES: List[ActivationCase] = [
    ActivationCase("relu", "relu", F.relu),
    ActivationCase("leaky_relu", "leaky_relu", F.leaky_relu),
    ActivationCase("prelu", "prelu", F.prelu, parameter="channel", shape=CHANNEL_SHAPE),
    ActivationCase("elu", "elu", F.elu),
    ActivationCase("selu", "selu", F.selu),
    ActivationCase("silu", "silu", F.silu),
    ActivationCase("swish_scalar_beta", "swish", composed_swish, parameter="shared", shape=CHANNEL_SHAPE),
    ActivationCase("swish_channel_beta", "swish", composed_swish, parameter="channel", shape=CHANNEL_SHAPE),
    ActivationCase("gelu", "gelu", F.gelu),
    ActivationCase("gelu_tanh", "gelu", F.gelu, kwargs={"approximate": "tanh"}),
    ActivationCase("sigmoid", "sigmoid", torch.sigmoid),
    ActivationCase("tanh", "tanh", torch.tanh),
    ActivationCase("hardtanh", "hardtanh", F.hardtanh),
    ActivationCase("softmax", "softmax", F.softmax, kwargs={"dim": -1}, shape=SOFTMAX_SHAPE),
    ActivationCase("softmax_dim0", "softmax", F.softmax, kwargs={"dim": 0}, shape=(1 << 10, 1 << 16)),
]
IMPLEMENTATIONS = ("native", "reference", "compiled_reference", "lossext")


def case_named(name: str) -> ActivationCase:
    return next(case for case in CASES if case.name == name)


class ActivationFamily:
    name = "activations"
    implementations = IMPLEMENTATIONS
    # The eager reference is slow and only says what compiling it buys: on request.
    default_implementations = ("native", "compiled_reference", "lossext")
    quick_ops = ("relu", "gelu", "softmax")
    shape_rank = None  # any: the per-channel parameter follows dim 1

    def op_names(self) -> List[str]:
        return [case.name for case in CASES]

    def shapes(self, op: str, device: torch.device, quick: bool) -> List[Shape]:
        return [case_named(op).shape]

    def implementations_for(self, op: str, device: torch.device, wanted: Sequence[str]) -> List[str]:
        available = {"native", "reference", "compiled_reference"} | ({"lossext"} if fused_runs_on(device) else set())
        return [name for name in IMPLEMENTATIONS if name in wanted and name in available]

    def default_gradient_mode(self, device: torch.device) -> str:
        return ""

    def setup(self, op: str, shape: Shape, dtype: torch.dtype, implementations: Sequence[str],
              device: torch.device) -> CaseSetup:
        case = case_named(op)
        generator = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(shape, generator=generator, device=device).to(dtype)
        grad_output = torch.randn(shape, generator=generator, device=device).to(dtype)
        size = case.parameter_size(shape)
        parameter = None
        if size:
            parameter = (torch.rand(size, generator=generator, device=device) * 0.5 + 0.75).to(dtype).requires_grad_()
        reference = getattr(lossext.reference, case.function)
        functions: Dict[str, Callable[..., torch.Tensor]] = {
            "native": case.native, "reference": reference, "lossext": getattr(lossext, case.function)}
        if "compiled_reference" in implementations:
            functions["compiled_reference"] = compiled(reference, fullgraph=True)
        parameters = [parameter] if parameter is not None else []

        forwards, steps = {}, {}
        for name in implementations:
            # An input of its own on the same storage: its gradient lives from its step to its next one, as in a
            # training loop, whichever implementations run in between.
            leaves = [x.detach().requires_grad_(), *parameters]

            def forward(function=functions[name], leaves=leaves) -> torch.Tensor:
                return function(*leaves, **case.kwargs)

            forwards[name] = forward
            steps[name] = user_step(forward, leaves, grad_output)
        return CaseSetup(steps, forwards, [x, *parameters, grad_output],
                         bytes_moved=TENSORS_MOVED * x.numel() * x.element_size())
