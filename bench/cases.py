"""What the benchmark runs: one LossCase per loss, the shapes, and the speed targets it reports.

The cases come from the op-info table (lossext/testing/loss_info.py): adding a loss there adds
its case here. Its fused version is `lossext.<name>` and its reference `lossext.reference.<name>`;
the harness times both, plus `torch.compile` of the reference, PyTorch's own op where the entry
names one (`native`), and the kernel alone (`<name>_forward_out`), all with the entry's
`bench_params`: float parameters go to every implementation as keywords and to the kernel as its
params list; the learnable scalars (the two-scale loss's r1, r2, R) are made per case as tensors
that take gradients (`tensor_kwargs`).
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

import lossext
from lossext._checks import reduction_code
from lossext.testing.loss_info import LOSSES, LossInfo

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


def row_loss_kernel(loss: LossInfo) -> KernelCall:
    """The fused forward of `loss` (its op `<name>_forward_out`) writing its gradient into a preallocated buffer.

    The case's kwargs give the op's float params (loss.op_params, in the order the loss header's
    make_params reads them) and its learnable scalars as one 1-D tensor (loss.op_tensor_params).
    """

    def run(logits: torch.Tensor, target: torch.Tensor, grad_buffer: torch.Tensor, kwargs: Mapping) -> torch.Tensor:
        op = getattr(torch.ops.lossext, f"{loss.name}_forward_out")
        scalars = loss.op_tensor_params(kwargs)
        return op(logits, target, kwargs.get("weight"), loss.op_params(kwargs),
                  None if scalars is None else scalars.detach(), kwargs.get("ignore_index", -100),
                  reduction_code(kwargs.get("reduction", "mean")), grad_buffer)

    return run


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


def float32_scalars(loss: LossInfo) -> Optional[TensorKwargs]:
    """The loss's learnable scalars at their bench_params values, float32 scalars that take gradients
    (a float32 model's parameters, whatever the logits' dtype), or None if it has none."""
    if not loss.tensor_params:
        return None

    def make(classes: int, device: torch.device, dtype: torch.dtype) -> Dict[str, torch.Tensor]:
        return {name: torch.tensor(float(loss.bench_params[name]), device=device, requires_grad=True)
                for name in loss.tensor_params}

    return make


def case_of(loss: LossInfo) -> LossCase:
    """The benchmark case of an op-info entry."""
    return LossCase(loss.name, kwargs={name: value for name, value in loss.bench_params.items()
                                       if name not in loss.tensor_params},
                    native=loss.native,
                    kernel=row_loss_kernel(loss),
                    tensor_kwargs=float32_scalars(loss))


CASES: List[LossCase] = [case_of(loss) for loss in LOSSES]


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
