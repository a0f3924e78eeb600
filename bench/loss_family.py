"""The row-loss family: every LossCase of bench/cases.py as timed training steps.

Implementations: native (PyTorch's op, where one exists), reference
(lossext.reference, eager), compiled_reference (torch.compile of it),
lossext_fused and lossext_recompute (the two gradient modes), and
lossext_kernel (the fused forward writing the gradient into a preallocated
buffer, no autograd: the kernel's own speed).
"""

from typing import Callable, Dict, List, Sequence

import torch

import lossext
from bench import cases as bench_cases
from bench.harness import CaseSetup, Shape, compiled, fused_runs_on
from bench.measure import Step, user_step

FUSED_IMPLEMENTATIONS = ("lossext_fused", "lossext_recompute", "lossext_kernel")
IMPLEMENTATIONS = ("native", "reference", "compiled_reference", *FUSED_IMPLEMENTATIONS)


def in_gradient_mode(loss_fn: Callable[..., torch.Tensor], mode: str) -> Callable[..., torch.Tensor]:
    """loss_fn with lossext's gradient mode pinned to `mode` (read by the forward; backward follows it)."""

    def run(*args, **kwargs):
        lossext.set_gradient_mode(mode)
        return loss_fn(*args, **kwargs)

    return run


class LossFamily:
    name = "losses"
    implementations = IMPLEMENTATIONS
    default_implementations = IMPLEMENTATIONS
    quick_ops = ("cross_entropy",)
    shape_rank = 2  # (N, C)

    def op_names(self) -> List[str]:
        return [case.name for case in bench_cases.CASES]

    def shapes(self, op: str, device: torch.device, quick: bool) -> List[Shape]:
        if quick:
            return list(bench_cases.QUICK_SHAPES)
        return bench_cases.SHAPES + (bench_cases.GPU_ONLY_SHAPES if device.type == "cuda" else [])

    def implementations_for(self, op: str, device: torch.device, wanted: Sequence[str]) -> List[str]:
        (case,) = bench_cases.cases_by_name([op])
        available = {"reference", "compiled_reference"}
        if case.native is not None:
            available.add("native")
        if fused_runs_on(device):
            available.update({"lossext_fused", "lossext_recompute"})
            if case.kernel is not None:
                available.add("lossext_kernel")
        return [name for name in IMPLEMENTATIONS if name in wanted and name in available]

    def default_gradient_mode(self, device: torch.device) -> str:
        return lossext.losses.ops.gradient_mode(device)

    def setup(self, op: str, shape: Shape, dtype: torch.dtype, implementations: Sequence[str],
              device: torch.device) -> CaseSetup:
        """Each implementation's step: `logits.grad = None; loss_fn(logits, target, **kwargs).backward()`, or
        the kernel alone into a buffer it reuses."""
        (case,) = bench_cases.cases_by_name([op])
        rows, classes = shape
        # Drawn on the device itself: (16384, 128256) fp32 logits are 8.4 GB to generate and copy from the host.
        generator = torch.Generator(device=device).manual_seed(0)
        logits = (2 * torch.randn(rows, classes, generator=generator, device=device)).to(dtype)
        target = case.make_target(rows, classes, device, generator)
        tensor_kwargs = case.tensor_kwargs(classes, device, dtype) if case.tensor_kwargs else {}
        kwargs = {**case.kwargs, **tensor_kwargs}
        scalar_leaves = [t for t in tensor_kwargs.values() if t.requires_grad]  # two-scale's r1, r2, R

        loss_fns: Dict[str, Callable[..., torch.Tensor]] = {}
        if "native" in implementations:
            loss_fns["native"] = case.native
        if "reference" in implementations:
            loss_fns["reference"] = case.reference()
        if "compiled_reference" in implementations:
            # Not fullgraph: the reference's argument checks read tensor values (.item()), a graph break by design.
            loss_fns["compiled_reference"] = compiled(case.reference(), fullgraph=False)
        for mode in ("fused", "recompute"):
            if f"lossext_{mode}" in implementations:
                loss_fns[f"lossext_{mode}"] = in_gradient_mode(case.fused(), mode)

        steps: Dict[str, Step] = {}
        forwards: Dict[str, Callable[[], torch.Tensor]] = {}
        for name in implementations:
            if name == "lossext_kernel":
                grad_buffer = torch.zeros_like(logits)  # touched once here, reused by every call

                def kernel_step(grad_buffer=grad_buffer) -> None:
                    case.kernel(logits, target, grad_buffer, kwargs)

                steps[name] = kernel_step
                continue

            # A leaf of its own on the same storage: its gradient lives from its step to its next one, as in a
            # training loop, whichever implementations run in between.
            own_logits = logits.detach().requires_grad_()

            def forward(loss_fn=loss_fns[name], own_logits=own_logits) -> torch.Tensor:
                return loss_fn(own_logits, target, **kwargs)

            steps[name] = user_step(forward, [own_logits, *scalar_leaves])
            forwards[name] = forward
        element_size = torch.empty((), dtype=dtype).element_size()
        return CaseSetup(steps, forwards, [logits, target, *tensor_kwargs.values()],
                         bytes_moved=2 * rows * classes * element_size)  # logits read once + gradient written once
