"""The fused-head family: a classifier head (the linear layer and a loss) as a training step, for every lossext loss.

Each case is (N, H, V): N rows of H features, a (V, H) weight. Every timed step is
`x.grad = W.grad = None; head(x, W, target).backward()`, for the implementations

  products           the three matrix products alone, x W^T, G W and G^T x (G: the logits), under no_grad:
                     the GEMM floor every head's time is divided by (time_vs_products)
  lossext            lossext.linear_cross_entropy, or lossext.linear_loss(<loss>, ...) (the fused head)
  unfused            the loss on F.linear(x, W): PyTorch's op where one exists (F.cross_entropy), else the
                     lossext loss
  torch_lce          F.linear_cross_entropy (options=None)                              } cross-entropy
  torch_lce_chunked  F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())   } only
  compiled_unfused   torch.compile of unfused
  cut_cross_entropy  cut_cross_entropy.linear_cross_entropy(..., impl="torch_compile"), cross-entropy only,
                     when the optional package cut-cross-entropy imports

with each loss's arguments from its bench case (bench/cases.py). After the timing, two columns per
implementation: `grad_error_vs_float64`, the larger of the max-norm relative errors of d loss/d x and
d loss/d W of its last timed step against the float64 unfused head; and `peak_extra_bytes`, the memory a
forward+backward allocates at its peak above its inputs and the gradients it returns. On CPU that is read
from the kernel in a child process per implementation, one at a time (`python -m bench.head_family`), with
MALLOC_MMAP_THRESHOLD_=131072 so that every allocation of 128 KiB or more is a mapping of its own, returned
to the OS when freed: after two warm-up steps and with the gradients dropped, the child resets the
resident-set high-water mark (5 into /proc/self/clear_refs), runs one step and reports VmHWM minus the
resident size before it minus the returned gradients' bytes. On CUDA the caching allocator's peak counter
gives the same difference in this process.

No effective GB/s: the step is bound by its three GEMMs (2 N H V multiply-adds each), not by memory
traffic, so a bytes-per-second figure, or its share of the copy bandwidth, would say nothing;
time_vs_products is the head's efficiency measure instead.
"""

import argparse
import functools
import gc
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import lossext
from bench import cases as bench_cases
from bench import environment
from bench.harness import REPO_ROOT, CaseSetup, Shape, compiled, fused_runs_on
from bench.measure import Step, synchronize, user_step
from bench.report import PRODUCTS

CROSS_ENTROPY = "cross_entropy"
IMPLEMENTATIONS = (PRODUCTS, "lossext", "unfused", "torch_lce", "torch_lce_chunked", "compiled_unfused",
                   "cut_cross_entropy")
# (N, H, V): a small language model's head, and Llama 3's vocabulary with a wider hidden size.
QUICK_SHAPES: List[Shape] = [(4096, 512, 32000)]
SHAPES: List[Shape] = QUICK_SHAPES + [(8192, 1024, 128256)]
# glibc serves every allocation of 128 KiB or more by a mapping of its own, unmapped when freed: the resident
# size then follows the live tensors, and its high-water mark the step's peak.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
MEMORY_WARMUP_STEPS = 2
# The float64 truth computes this many bytes of logits at a time: (8192, 128256) whole would be 8.4 GB.
TRUTH_CHUNK_BYTES = 256 << 20

Head = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x, W, target) -> loss


@functools.lru_cache(maxsize=None)
def cut_cross_entropy_head() -> Optional[Callable[..., torch.Tensor]]:
    """cut_cross_entropy.linear_cross_entropy, or None (saying so once) when the optional package does not
    import."""
    try:
        from cut_cross_entropy import linear_cross_entropy
    except Exception as error:  # not installed, or its kernels' dependencies (triton) missing
        print(f"note: cut_cross_entropy is skipped: the optional package cut-cross-entropy does not import "
              f"({type(error).__name__}: {error}); to time it, install it and triton beside the venv: pip install "
              f"--no-deps --target DIR cut-cross-entropy triton, then PYTHONPATH=DIR", file=sys.stderr)
        return None
    return linear_cross_entropy


def torch_cross_entropy_kwargs(kwargs: Mapping) -> Dict:
    """The cross-entropy case's arguments as PyTorch's heads take them: they have no z-loss and no logit cap."""
    if kwargs.get("z_loss", 0.0) != 0.0 or kwargs.get("logit_softcap") is not None:
        raise ValueError(f"PyTorch's linear_cross_entropy has no z-loss or logit cap; the bench case has {kwargs}")
    return {name: value for name, value in kwargs.items() if name not in ("z_loss", "logit_softcap")}


def heads(case: bench_cases.LossCase, kwargs: Mapping, implementations: Sequence[str]) -> Dict[str, Head]:
    """The loss head of every implementation but the products, with the case's arguments bound."""
    row_loss = case.native or case.fused()

    def unfused(x, weight, target):
        return row_loss(F.linear(x, weight), target, **kwargs)

    def fused(x, weight, target):
        if case.name == CROSS_ENTROPY:
            return lossext.linear_cross_entropy(x, weight, target, **kwargs)
        return lossext.linear_loss(case.name, x, weight, target, **kwargs)

    functions: Dict[str, Head] = {"lossext": fused, "unfused": unfused}
    if "compiled_unfused" in implementations:
        # Not fullgraph: without the extension the lossext losses fall back to their reference, whose argument
        # checks read tensor values (a graph break by design).
        functions["compiled_unfused"] = compiled(unfused, fullgraph=False)
    if case.name == CROSS_ENTROPY:
        torch_kwargs = torch_cross_entropy_kwargs(kwargs)
        functions["torch_lce"] = functools.partial(F.linear_cross_entropy, **torch_kwargs)
        if "torch_lce_chunked" in implementations:
            functions["torch_lce_chunked"] = functools.partial(
                F.linear_cross_entropy, options=torch.nn.LinearCrossEntropyOptions(), **torch_kwargs)
        if "cut_cross_entropy" in implementations:
            if torch_kwargs.get("label_smoothing", 0.0) != 0.0:
                raise ValueError("cut_cross_entropy has no label smoothing")
            functions["cut_cross_entropy"] = functools.partial(cut_cross_entropy_head(), impl="torch_compile")
    return {name: function for name, function in functions.items() if name in implementations}


@dataclass
class HeadInputs:
    x: torch.Tensor  # (N, H)
    weight: torch.Tensor  # (V, H)
    target: torch.Tensor  # (N,) class indices
    kwargs: Dict  # the loss's arguments, its learnable scalars (two-scale's r1, r2, norm) among them
    scalars: List[torch.Tensor]  # those scalars: leaves that take gradients


def make_inputs(case: bench_cases.LossCase, shape: Shape, dtype: torch.dtype, device: torch.device) -> HeadInputs:
    """Seeded inputs of one case, the same in every process: logits x W^T of standard deviation about 0.5."""
    rows, hidden, classes = shape
    generator = torch.Generator(device=device).manual_seed(0)
    x = (0.5 * torch.randn(rows, hidden, generator=generator, device=device)).to(dtype)
    weight = (torch.randn(classes, hidden, generator=generator, device=device) / hidden**0.5).to(dtype)
    target = case.make_target(rows, classes, device, generator)
    tensor_kwargs = case.tensor_kwargs(classes, device, dtype) if case.tensor_kwargs else {}
    return HeadInputs(x, weight, target, {**case.kwargs, **tensor_kwargs},
                      [t for t in tensor_kwargs.values() if t.requires_grad])


@dataclass
class HeadRun:
    """One implementation's timed step and the leaves it writes gradients into."""

    step: Step
    x: torch.Tensor  # a leaf of its own on the inputs' storage
    weight: torch.Tensor  # likewise
    leaves: List[torch.Tensor]  # x, weight and the loss's learnable scalars, whose gradients each step drops
    forward: Optional[Callable[[], torch.Tensor]]  # the loss alone (None for the products: no autograd)


def products_step(x: torch.Tensor, weight: torch.Tensor) -> Step:
    """The three matrix products of a head's forward and backward, without a loss: logits = x W^T, then
    logits W and logits^T x in place of the gradients (the logits stand in for d loss/d logits)."""

    def step() -> None:
        x.grad = None
        weight.grad = None
        with torch.no_grad():
            logits = x @ weight.t()
            x.grad = logits @ weight
            weight.grad = logits.t() @ x

    return step


def build_runs(op: str, shape: Shape, dtype: torch.dtype, implementations: Sequence[str],
               device: torch.device) -> Tuple[HeadInputs, Dict[str, HeadRun]]:
    (case,) = bench_cases.cases_by_name([op])
    inputs = make_inputs(case, shape, dtype, device)
    functions = heads(case, inputs.kwargs, implementations)
    runs = {}
    for name in implementations:
        # Leaves of its own on the same storage: their gradients live from its step to its next one, as in a
        # training loop, whichever implementations run in between.
        x = inputs.x.detach().requires_grad_()
        weight = inputs.weight.detach().requires_grad_()
        leaves = [x, weight, *inputs.scalars]
        if name == PRODUCTS:
            runs[name] = HeadRun(products_step(x, weight), x, weight, leaves, None)
            continue

        def forward(head=functions[name], x=x, weight=weight) -> torch.Tensor:
            return head(x, weight, inputs.target)

        runs[name] = HeadRun(user_step(forward, leaves), x, weight, leaves, forward)
    return inputs, runs


# ---- What is measured besides the time ----

def float64_gradients(case: bench_cases.LossCase, inputs: HeadInputs) -> Tuple[torch.Tensor, torch.Tensor]:
    """d loss/d x and d loss/d W of the unfused head in float64 (PyTorch's op where there is one, else the
    loss's reference), the logits a chunk of rows at a time. Every case's rows count alike (no class weight, no
    ignored target), so the mean over rows is each chunk's sum divided by N."""
    row_loss = case.native or case.reference()
    x, weight = inputs.x.double(), inputs.weight.double()
    kwargs = {name: value.detach().double() if isinstance(value, torch.Tensor) else value
              for name, value in inputs.kwargs.items()}
    rows, classes = x.shape[0], weight.shape[0]
    chunk = max(1, TRUTH_CHUNK_BYTES // (8 * classes))
    grad_x = torch.empty_like(x)
    grad_weight = torch.zeros_like(weight)
    for start in range(0, rows, chunk):
        part = slice(start, start + chunk)
        logits = (x[part] @ weight.t()).requires_grad_()
        loss = row_loss(logits, inputs.target[part], reduction="sum", **kwargs) / rows
        (grad_logits,) = torch.autograd.grad(loss, logits)
        grad_x[part] = grad_logits @ weight
        grad_weight += grad_logits.t() @ x[part]
    return grad_x, grad_weight


def relative_error(gradient: torch.Tensor, truth: torch.Tensor) -> float:
    """max |gradient - truth| / max |truth|: the error relative to the gradient's scale (an element-wise ratio
    would blow up at the entries that are nearly 0)."""
    return ((gradient.double() - truth).abs().max() / truth.abs().max()).item()


def resident_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: its high-water mark)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def returned_gradient_bytes(run: HeadRun) -> int:
    return sum(leaf.grad.nbytes for leaf in run.leaves if leaf.grad is not None)


def peak_extra_bytes_here(run: HeadRun, device: torch.device) -> int:
    """The memory one step of `run` allocates at its peak above its inputs and returned gradients, measured in
    this process: on CPU by the resident size (right only under MEMORY_ENV, see the module doc), on CUDA by the
    caching allocator's peak counter."""
    for _ in range(MEMORY_WARMUP_STEPS):
        run.step()
    for leaf in run.leaves:
        leaf.grad = None
    # The fused head keeps its scratch between calls (lossext.empty_cache()): freed here so that the measured
    # step allocates it again and it counts in the peak, as memory the head holds.
    lossext.empty_cache()
    gc.collect()
    synchronize(device)
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run.step()
        synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - before
    else:
        before_kib = resident_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the resident size now
        run.step()
        extra = (resident_kib("VmHWM") - before_kib) * 1024
    return extra - returned_gradient_bytes(run)


def peak_extra_bytes_in_child(op: str, shape: Shape, dtype_name: str, implementation: str) -> Optional[int]:
    """peak_extra_bytes_here in a fresh process of glibc's allocator under MEMORY_ENV (not the run's tcmalloc,
    which keeps freed memory resident); None, saying why, if the child fails."""
    env = {**environment.environment_for(environment.DEFAULT, os.environ), **MEMORY_ENV}
    command = [sys.executable, "-m", "bench.head_family", "--op", op, "--shape", "x".join(map(str, shape)),
               "--dtype", dtype_name, "--implementation", implementation, "--threads", str(torch.get_num_threads())]
    child = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if child.returncode != 0:
        print(f"warning: the peak-memory child of {implementation} ({op} {shape} {dtype_name}) exited with "
              f"{child.returncode}; its peak_extra_bytes stays empty:\n{child.stderr[-2000:]}", file=sys.stderr)
        return None
    return int(child.stdout.split()[-1])


class HeadFamily:
    name = "heads"
    implementations = IMPLEMENTATIONS
    default_implementations = IMPLEMENTATIONS
    quick_ops = (CROSS_ENTROPY,)
    shape_rank = 3  # (N, H, V)

    def __init__(self, measure_memory: bool = True):
        self.measure_memory = measure_memory

    def op_names(self) -> List[str]:
        return [case.name for case in bench_cases.CASES]

    def shapes(self, op: str, device: torch.device, quick: bool) -> List[Shape]:
        return list(QUICK_SHAPES if quick else SHAPES)

    def implementations_for(self, op: str, device: torch.device, wanted: Sequence[str]) -> List[str]:
        available = {PRODUCTS, "unfused", "compiled_unfused"}
        if fused_runs_on(device):
            available.add("lossext")
        if op == CROSS_ENTROPY:
            available.update({"torch_lce", "torch_lce_chunked"})
            if "cut_cross_entropy" in wanted and cut_cross_entropy_head() is not None:
                available.add("cut_cross_entropy")
        return [name for name in IMPLEMENTATIONS if name in wanted and name in available]

    def default_gradient_mode(self, device: torch.device) -> str:
        return ""  # the fused head finishes its gradients in forward whatever lossext's gradient mode

    def setup(self, op: str, shape: Shape, dtype: torch.dtype, implementations: Sequence[str],
              device: torch.device) -> CaseSetup:
        inputs, runs = build_runs(op, shape, dtype, implementations, device)
        dtype_name = next(name for name, value in bench_cases.DTYPES.items() if value == dtype)

        def extra_columns() -> Dict[str, Dict[str, object]]:
            """After the timing: each implementation's gradient error (its last timed step's gradients) and
            peak memory."""
            (case,) = bench_cases.cases_by_name([op])
            truth_x, truth_weight = float64_gradients(case, inputs)
            columns: Dict[str, Dict[str, object]] = {name: {} for name in runs}
            for name, run in runs.items():
                if name != PRODUCTS:  # its "gradients" are products of the logits, not of a loss
                    error = max(relative_error(run.x.grad, truth_x), relative_error(run.weight.grad, truth_weight))
                    columns[name]["grad_error_vs_float64"] = f"{error:.3g}"
            del truth_x, truth_weight
            if self.measure_memory:
                for name, run in runs.items():  # one at a time: the peaks of concurrent steps would overlap
                    if device.type == "cuda":
                        peak = peak_extra_bytes_here(run, device)
                    else:
                        peak = peak_extra_bytes_in_child(op, shape, dtype_name, name)
                    columns[name]["peak_extra_bytes"] = "" if peak is None else peak
            return columns

        return CaseSetup({name: run.step for name, run in runs.items()},
                         {name: run.forward for name, run in runs.items() if run.forward is not None},
                         [inputs.x, inputs.weight, inputs.target, *inputs.scalars],
                         bytes_moved=None, extra_columns=extra_columns)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The peak-memory child: print peak_extra_bytes_here of one implementation on CPU."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--op", required=True)
    parser.add_argument("--shape", required=True, help="NxHxV")
    parser.add_argument("--dtype", required=True, choices=list(bench_cases.DTYPES))
    parser.add_argument("--implementation", required=True, choices=IMPLEMENTATIONS)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = tuple(int(size) for size in args.shape.split("x"))
    device = torch.device("cpu")
    _, runs = build_runs(args.op, shape, bench_cases.DTYPES[args.dtype], [args.implementation], device)
    print(peak_extra_bytes_here(runs[args.implementation], device))


if __name__ == "__main__":
    main()
