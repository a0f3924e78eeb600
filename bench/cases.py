"""What the benchmark runs: one LossCase per loss, the shapes, and the speed targets it reports.

Adding a loss is one entry in CASES. Its fused version is `lossext.<name>` and
its reference `lossext.reference.<name>`; the harness times both, plus
`torch.compile` of the reference, PyTorch's own op when `native` is given, and
the kernel alone when `kernel` is given. See CASES below: hinge passes its
float params to its kernel, the two-scale loss its learnable scales (tensors
that take gradients, made per case by `tensor_kwargs`).
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import lossext
from lossext._checks import reduction_code

# (N, C) shapes. The last one only on GPUs: its fp32 logits alone take 8.4 GB.
SHAPES: List[Tuple[int, int]] = [(8192, 1000), (4096, 32000), (65536, 10)]
GPU_ONLY_SHAPES: List[Tuple[int, int]] = [(16384, 128256)]
QUICK_SHAPES: List[Tuple[int, int]] = [(4096, 32000), (65536, 10)]
DTYPES: Dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Kernel-alone callable: (logits, target, gradient buffer, kwargs) -> loss, writing the gradient into the buffer.
KernelCall = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Mapping], torch.Tensor]
# Tensor arguments of a loss, made per case: (number of classes, device, dtype) -> {keyword: tensor}.
TensorKwargs = Callable[[int, torch.device, torch.dtype], Dict[str, torch.Tensor]]


def class_indices(rows: int, classes: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """Uniformly random int64 class indices, no ignored rows (`generator` is on `device`)."""
    return torch.randint(0, classes, (rows,), generator=generator, device=device)


def row_loss_kernel(op_name: str, params: Callable[[Mapping], Sequence[float]] = lambda kwargs: [],
                    tensor_params: Optional[Callable[[Mapping], torch.Tensor]] = None) -> KernelCall:
    """The fused forward of row loss `op_name` writing its gradient into a preallocated buffer.

    `params` maps the case's kwargs to the op's float params (in the order the
    loss header's make_params reads them); `tensor_params` to its learnable
    scalars as one 1-D tensor (the two-scale loss's r1, r2, R), if it has any.
    """

    def run(logits: torch.Tensor, target: torch.Tensor, grad_buffer: torch.Tensor, kwargs: Mapping) -> torch.Tensor:
        op = getattr(torch.ops.lossext, f"{op_name}_forward_out")
        scalars = None if tensor_params is None else tensor_params(kwargs).detach()
        return op(logits, target, kwargs.get("weight"), [float(p) for p in params(kwargs)], scalars,
                  kwargs.get("ignore_index", -100), reduction_code(kwargs.get("reduction", "mean")), grad_buffer)

    return run


def two_scale_scales(classes: int, device: torch.device, dtype: torch.dtype) -> Dict[str, torch.Tensor]:
    """r1, r2 and R as float32 scalars that take gradients, as the paper starts them (r2 = 10 r1)."""
    return {name: torch.tensor(value, device=device, requires_grad=True)
            for name, value in (("r1", 1.0), ("r2", 10.0), ("norm", 1.0))}


@dataclass(frozen=True)
class LossCase:
    name: str  # lossext.<name> and lossext.reference.<name>
    kwargs: Mapping = field(default_factory=dict)  # extra arguments passed to every implementation
    native: Optional[Callable[..., torch.Tensor]] = None  # PyTorch's own op with the same arguments
    kernel: Optional[KernelCall] = None
    tensor_kwargs: Optional[TensorKwargs] = None
    make_target: Callable[[int, int, torch.device, torch.Generator], torch.Tensor] = class_indices

    def fused(self) -> Callable[..., torch.Tensor]:
        return getattr(lossext, self.name)

    def reference(self) -> Callable[..., torch.Tensor]:
        return getattr(lossext.reference, self.name)


CASES: List[LossCase] = [
    LossCase("cross_entropy", native=F.cross_entropy,
             kernel=row_loss_kernel("cross_entropy", lambda kw: [kw.get("label_smoothing", 0.0)])),
    LossCase("hinge", kwargs={"p": 2.0, "margin": 0.5},
             kernel=row_loss_kernel("hinge", lambda kw: [kw["p"], kw["margin"]])),
    LossCase("l1", kernel=row_loss_kernel("l1")),
    LossCase("l2", kernel=row_loss_kernel("l2")),
    LossCase("expectation", kernel=row_loss_kernel("expectation")),
    LossCase("regularized_expectation", kernel=row_loss_kernel("regularized_expectation")),
    LossCase("chebyshev", kernel=row_loss_kernel("chebyshev")),
    LossCase("squared_log", kernel=row_loss_kernel("squared_log")),
    LossCase("tanimoto", kernel=row_loss_kernel("tanimoto")),
    LossCase("cauchy_schwarz", kernel=row_loss_kernel("cauchy_schwarz")),
    LossCase("alpha_loss", kwargs={"alpha": 2.0}, kernel=row_loss_kernel("alpha_loss", lambda kw: [kw["alpha"]])),
    LossCase("two_scale_cross_entropy", kwargs={"eta": 0.01}, tensor_kwargs=two_scale_scales,
             kernel=row_loss_kernel("two_scale_cross_entropy", lambda kw: [kw["eta"]],
                                    lambda kw: torch.stack([kw["r1"], kw["r2"], kw["norm"]]))),
]


def cases_by_name(names: Optional[Sequence[str]] = None) -> List[LossCase]:
    """The CASES entries named (all when names is None), in CASES order."""
    if names is None:
        return list(CASES)
    known = {case.name: case for case in CASES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown loss(es) {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]


@dataclass(frozen=True)
class Target:
    """A speed goal from the Foundation issue, checked against one run's rows (reported, never asserted)."""

    loss: str
    shape: Tuple[int, int]
    dtype: str
    implementation: str  # the row measured ("lossext" means the device's default gradient mode)
    metric: str  # a CSV column: speedup_vs_<peer> or fraction_of_copy
    minimum: float


TARGETS: List[Target] = [
    Target("cross_entropy", (4096, 32000), "fp32", "lossext", "speedup_vs_native", 2.5),
    Target("cross_entropy", (4096, 32000), "fp32", "lossext", "speedup_vs_compiled_reference", 2.5),
    Target("cross_entropy", (4096, 32000), "fp32", "lossext_kernel", "fraction_of_copy", 0.40),
    Target("cross_entropy", (4096, 32000), "bf16", "lossext", "speedup_vs_native", 2.5),
    Target("cross_entropy", (65536, 10), "fp32", "lossext", "speedup_vs_native", 1.5),
    Target("cross_entropy", (65536, 10), "bf16", "lossext", "speedup_vs_native", 1.5),
]
