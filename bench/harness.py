"""What every benchmark family shares: the case a family builds, its measurement into CSV rows, and the
facts stamped on every row.

A family (bench/loss_family.py, bench/activation_family.py, bench/head_family.py) turns one case
(an op, a shape, a dtype, the implementations wanted) into a CaseSetup: a
timed step per implementation, normally measure.user_step. measure_case
times those steps interleaved with the copy-bandwidth step on one timer and
returns the case's rows in the one schema of bench/report.py.
"""

import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import torch

import lossext
from bench import report
from bench.cases import DTYPES
from bench.measure import Step, copy_bytes, saved_tensor_bytes, time_interleaved

REPO_ROOT = Path(__file__).resolve().parent.parent
Shape = Tuple[int, ...]
# A step is steady when it takes within this share of the median time (the criterion).
STEADY_TOLERANCE = 0.10


@dataclass
class CaseSetup:
    """One case, built by a family, ready to time."""

    steps: Dict[str, Step]  # implementation -> its timed step
    forwards: Dict[str, Callable[[], torch.Tensor]]  # implementation -> its forward alone, for the saved bytes
    inputs: List[torch.Tensor]  # the tensors the steps take: their storages do not count as saved for backward
    # The least memory traffic of one step, which effective GB/s divides by the median time; None where memory
    # traffic does not bound the step (the heads' GEMMs), which leaves the GB/s columns empty.
    bytes_moved: Optional[int]
    # Columns the family measures itself once the steps have been timed (so it may read the gradients of their
    # last step): implementation -> {column: value}. The heads' gradient error and peak memory.
    extra_columns: Optional[Callable[[], Dict[str, Dict[str, object]]]] = None


class Family(Protocol):
    """An op family the harness can benchmark."""

    name: str  # the CSV's family column and --family's value
    implementations: Tuple[str, ...]  # every implementation it knows, in table order
    default_implementations: Tuple[str, ...]
    quick_ops: Tuple[str, ...]  # what --quick runs unless --ops says otherwise
    shape_rank: Optional[int]  # the rank --shapes must have (None: any)

    def op_names(self) -> List[str]: ...

    def shapes(self, op: str, device: torch.device, quick: bool) -> List[Shape]: ...

    def implementations_for(self, op: str, device: torch.device, wanted: Sequence[str]) -> List[str]: ...

    def default_gradient_mode(self, device: torch.device) -> str: ...  # "" where the family has none

    def setup(self, op: str, shape: Shape, dtype: torch.dtype, implementations: Sequence[str],
              device: torch.device) -> CaseSetup: ...


def fused_runs_on(device: torch.device) -> bool:
    """Whether lossext's kernels (not its reference fallback) serve `device`: else its rows would time the reference."""
    return lossext.backend() == "extension" and lossext._extension.use_extension(device)


def compiled(function: Callable[..., torch.Tensor], fullgraph: bool) -> Callable[..., torch.Tensor]:
    """torch.compile of `function` for one shape and dtype, compiled afresh (never hitting the recompile limit)."""
    torch._dynamo.reset()
    return torch.compile(function, dynamic=False, fullgraph=fullgraph)


def measure_case(family: Family, op: str, shape: Shape, dtype_name: str, implementations: Sequence[str],
                 device: torch.device, warmup: int, repeats: int, copy: Step, copy_mib: int,
                 on_step: Callable[[], None]) -> List[Dict]:
    """Time one case, its implementations and the copy interleaved; return its CSV rows (without the run-
    and device-level columns)."""
    setup = family.setup(op, shape, DTYPES[dtype_name], implementations, device)
    timings = time_interleaved({**setup.steps, report.COPY: copy}, device, warmup, repeats, on_step)
    extra_columns = setup.extra_columns() if setup.extra_columns else {}
    saved = {name: saved_tensor_bytes(forward, setup.inputs) for name, forward in setup.forwards.items()}
    bytes_moved = setup.bytes_moved
    del setup  # free the case's tensors before the next one allocates its own

    copy_gbps = copy_bytes(copy_mib) / timings[report.COPY].median_ms / 1e6
    rows = []
    for name, timing in timings.items():
        moved = copy_bytes(copy_mib) if name == report.COPY else bytes_moved
        gbps = None if moved is None else moved / timing.median_ms / 1e6
        row = {
            "family": family.name, "op": op, "shape": report.format_shape(shape), "dtype": dtype_name,
            "implementation": name, "warmup": warmup, "repeats": repeats,
            "ms_median": f"{timing.median_ms:.6g}", "ms_mean": f"{timing.mean_ms:.6g}",
            "ms_min": f"{timing.min_ms:.6g}", "ms_max": f"{timing.max_ms:.6g}",
            "steps_within_10pct": f"{timing.fraction_within(STEADY_TOLERANCE):.3g}",
            "ms_samples": " ".join(f"{sample:.4g}" for sample in timing.samples_ms),
            "first_call_s": f"{timing.first_call_s:.3f}",
            "page_faults_median": f"{timing.median_page_faults:g}", "page_faults_mean": f"{timing.mean_page_faults:g}",
            "page_fault_samples": " ".join(str(faults) for faults in timing.page_faults),
            "bytes_moved": "" if moved is None else moved, "effective_gbps": "" if gbps is None else f"{gbps:.6g}",
            "copy_gbps": f"{copy_gbps:.6g}", "fraction_of_copy": "" if gbps is None else f"{gbps / copy_gbps:.6g}",
            "saved_bytes": saved[name][0] if name in saved else "",
            "saved_beyond_inputs_bytes": saved[name][1] if name in saved else "",
            **extra_columns.get(name, {}),
        }
        if name != report.COPY:
            for peer in report.PEERS + report.HEAD_PEERS:
                if peer in timings:
                    row[f"speedup_vs_{peer}"] = f"{timings[peer].median_ms / timing.median_ms:.6g}"
            if report.PRODUCTS in timings:
                row["time_vs_products"] = f"{timing.median_ms / timings[report.PRODUCTS].median_ms:.6g}"
        rows.append(row)
    return rows


# ---- Facts recorded with every row ----

def git_commit() -> str:
    """HEAD, with "+dirty" when tracked files outside bench/results differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return commit + ("+dirty" if dirty else "")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown-cpu"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def results_stem(device: torch.device) -> str:
    """<results dir>/<stem>.csv: the GPU's name, or cpu-<model>-<cores>c."""
    if device.type == "cuda":
        return slug(torch.cuda.get_device_name(device))
    return f"cpu-{slug(cpu_model())}-{os.cpu_count()}c"
