"""Benchmark lossext's fused losses against their peers, forward + backward.

    python bench/run.py                 # steady-state allocator (re-executes itself with it)
    python bench/run.py --default-env   # glibc's default allocator settings
    python bench/run.py --both-envs     # both, one after the other, one report
    python bench/run.py --quick         # cross-entropy, two shapes, few repeats (under 2 minutes on 2 cores)
    python bench/run.py --quick --losses all   # every loss, one process each

For every loss in bench/cases.py, shape and dtype it times, interleaved:
native (PyTorch's op, where one exists), reference (lossext.reference, eager),
compiled_reference (torch.compile of it), lossext_fused and lossext_recompute
(the two gradient modes), lossext_kernel (the fused forward writing the
gradient into a preallocated buffer) and copy (the machine's copy bandwidth).
Results: a table on stdout, rows appended to bench/results/<device>.csv, and
bench/results/<device>.png. See bench/README.md.
"""

import argparse
import datetime
import gc
import logging
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):
    # Run as a script (python bench/run.py): make the repository root importable as it is under -m.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import lossext  # noqa: E402
from bench import cases as bench_cases  # noqa: E402
from bench import report  # noqa: E402
from bench.measure import (Step, Timing, copy_bytes, copy_step, saved_tensor_bytes,  # noqa: E402
                           time_interleaved)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS_DIR = REPO_ROOT / "bench" / "results"

# Steady state, as in training where freed memory is reused: glibc keeps freed
# blocks (no mmap for blocks under 4 GiB, no trimming under 64 GiB) instead of
# returning each large tensor to the OS and page-faulting it in again next step.
STEADY_STATE_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
# Every allocator variable the two environments set or clear (torch's own hugepage switch included).
ALLOCATOR_VARS = (*STEADY_STATE_ENV, "THP_MEM_ALLOC_ENABLE")

FUSED_IMPLEMENTATIONS = ("lossext_fused", "lossext_recompute", "lossext_kernel")
IMPLEMENTATIONS = ("native", "reference", "compiled_reference", *FUSED_IMPLEMENTATIONS)
QUICK_WARMUP, QUICK_REPEATS = 1, 3
FULL_WARMUP, FULL_REPEATS = 2, 7


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    environment = parser.add_mutually_exclusive_group()
    environment.add_argument("--default-env", action="store_true",
                             help="run with glibc's default allocator settings instead of the steady state")
    environment.add_argument("--both-envs", action="store_true",
                             help="run the steady state, then the default environment, and report both")
    parser.add_argument("--quick", action="store_true",
                        help=f"shapes {bench_cases.QUICK_SHAPES}, {QUICK_WARMUP} warm-up, {QUICK_REPEATS} repeats")
    parser.add_argument("--losses", type=_names,
                        help="comma-separated losses from bench/cases.py, or all (default all; with --quick, "
                             "cross_entropy)")
    parser.add_argument("--dtypes", type=_names, default=list(bench_cases.DTYPES),
                        help=f"comma-separated, from {list(bench_cases.DTYPES)}")
    parser.add_argument("--shapes", type=_shapes, help="comma-separated NxC, overriding the default shapes")
    parser.add_argument("--implementations", type=_names, default=list(IMPLEMENTATIONS),
                        help=f"comma-separated, from {list(IMPLEMENTATIONS)}")
    parser.add_argument("--devices", type=_names, help="comma-separated (default: cpu, and cuda when available)")
    parser.add_argument("--warmup", type=int, help="warm-up calls per implementation")
    parser.add_argument("--repeats", type=int, help="timed calls per implementation")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch CPU threads (default: the CPUs this process may run on)")
    parser.add_argument("--copy-mib", type=int, default=512, help="size of each copy-bandwidth buffer, MiB")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    # Set on the child runs of --both-envs and of several losses: share one run id, and leave the plot and
    # targets to the parent.
    parser.add_argument("--part-of-run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.implementations) - set(IMPLEMENTATIONS)
    unknown_dtypes = set(args.dtypes) - set(bench_cases.DTYPES)
    if unknown or unknown_dtypes:
        parser.error(f"unknown implementation(s)/dtype(s): {sorted(unknown | unknown_dtypes)}")
    if args.losses is None:
        args.losses = ["cross_entropy"] if args.quick else ["all"]
    if args.losses == ["all"]:
        args.losses = [case.name for case in bench_cases.CASES]
    bench_cases.cases_by_name(args.losses)  # exits on an unknown name, before any child starts
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else FULL_WARMUP
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.devices is None:
        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return args


def _names(text: str) -> List[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _shapes(text: str) -> List[Tuple[int, int]]:
    shapes = []
    for item in _names(text):
        rows, classes = item.lower().split("x")
        shapes.append((int(rows), int(classes)))
    return shapes


# ---- The environment ----

def environment_label(env: Dict[str, str]) -> str:
    """steady (the malloc settings above), thp (torch's hugepage allocations alone), default or custom."""
    if all(env.get(k) == v for k, v in STEADY_STATE_ENV.items()):
        return "steady"
    if not any(k in env for k in ALLOCATOR_VARS):
        return "default"
    if env.get("THP_MEM_ALLOC_ENABLE") == "1" and not any(k in env for k in STEADY_STATE_ENV):
        return "thp"
    return "custom"


def allocator_settings(env: Dict[str, str]) -> str:
    return " ".join(f"{k}={env[k]}" for k in ALLOCATOR_VARS if k in env) or "glibc defaults"


def wanted_environment(default_env: bool) -> Dict[str, str]:
    """This process's environment with the allocator variables of the run wanted: the steady state (a user's
    THP_MEM_ALLOC_ENABLE=1 without MALLOC_* settings is kept instead, to measure it), or none of them."""
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARS}
    if not default_env:
        if environment_label(dict(os.environ)) == "thp":
            env["THP_MEM_ALLOC_ENABLE"] = "1"
        else:
            env.update(STEADY_STATE_ENV)
    return env


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
    """bench/results/<stem>.csv and .png: the GPU's name, or cpu-<model>-<cores>c."""
    if device.type == "cuda":
        return slug(torch.cuda.get_device_name(device))
    return f"cpu-{slug(cpu_model())}-{os.cpu_count()}c"


# ---- One case: a loss, a shape, a dtype, on a device ----

def fused_runs_on(device: torch.device) -> bool:
    """Whether lossext's kernels (not its reference fallback) serve `device`: else its rows would time the reference."""
    return lossext.backend() == "extension" and lossext._extension.use_extension(device)


def implementations_for(case: bench_cases.LossCase, device: torch.device, wanted: Sequence[str]) -> List[str]:
    available = {"reference", "compiled_reference"}
    if case.native is not None:
        available.add("native")
    if fused_runs_on(device):
        available.update({"lossext_fused", "lossext_recompute"})
        if case.kernel is not None:
            available.add("lossext_kernel")
    return [name for name in IMPLEMENTATIONS if name in wanted and name in available]


def in_gradient_mode(loss_fn: Callable[..., torch.Tensor], mode: str) -> Callable[..., torch.Tensor]:
    """loss_fn with lossext's gradient mode pinned to `mode` (read by the forward; backward follows it)."""

    def run(*args, **kwargs):
        lossext.set_gradient_mode(mode)
        return loss_fn(*args, **kwargs)

    return run


def build_steps(case: bench_cases.LossCase, implementations: Sequence[str], device: torch.device, rows: int,
                classes: int, dtype: torch.dtype
                ) -> Tuple[Dict[str, Step], Dict[str, Callable[[], torch.Tensor]], List[torch.Tensor]]:
    """The timed step (forward + backward, or the kernel alone) and the forward of each implementation,
    and the tensors they take (whose storages do not count as memory saved for backward)."""
    # Drawn on the device itself: (16384, 128256) fp32 logits are 8.4 GB to generate and copy from the host.
    generator = torch.Generator(device=device).manual_seed(0)
    logits = (2 * torch.randn(rows, classes, generator=generator, device=device)).to(dtype).requires_grad_()
    target = case.make_target(rows, classes, device, generator)
    tensor_kwargs = case.tensor_kwargs(classes, device, dtype) if case.tensor_kwargs else {}
    kwargs = {**case.kwargs, **tensor_kwargs}
    differentiable = [logits] + [t for t in tensor_kwargs.values() if t.requires_grad]

    loss_fns: Dict[str, Callable[..., torch.Tensor]] = {}
    if "native" in implementations:
        loss_fns["native"] = case.native
    if "reference" in implementations:
        loss_fns["reference"] = case.reference()
    if "compiled_reference" in implementations:
        torch._dynamo.reset()  # compile once for this shape and dtype, never hitting the recompile limit
        loss_fns["compiled_reference"] = torch.compile(case.reference(), dynamic=False)
    for mode in ("fused", "recompute"):
        if f"lossext_{mode}" in implementations:
            loss_fns[f"lossext_{mode}"] = in_gradient_mode(case.fused(), mode)

    steps: Dict[str, Step] = {}
    forwards: Dict[str, Callable[[], torch.Tensor]] = {}
    for name in implementations:
        if name == "lossext_kernel":
            detached = logits.detach()
            grad_buffer = torch.zeros_like(detached)  # touched once here, reused by every call

            def kernel_step(detached=detached, grad_buffer=grad_buffer) -> None:
                case.kernel(detached, target, grad_buffer, kwargs)

            steps[name] = kernel_step
            continue

        def forward(loss_fn=loss_fns[name]) -> torch.Tensor:
            return loss_fn(logits, target, **kwargs)

        def forward_backward(forward=forward) -> None:
            # autograd.grad, not .backward(): logits stand for a layer's output, whose gradient
            # flows on to that layer rather than being accumulated into a .grad.
            torch.autograd.grad(forward(), differentiable)

        steps[name] = forward_backward
        forwards[name] = forward
    return steps, forwards, [logits, target, *tensor_kwargs.values()]


def measure_case(case: bench_cases.LossCase, implementations: Sequence[str], device: torch.device, rows: int,
                 classes: int, dtype_name: str, args: argparse.Namespace, copy: Step,
                 on_step: Callable[[], None]) -> List[Dict]:
    """Time one case; return its CSV rows (without the run-level columns)."""
    steps, forwards, inputs = build_steps(case, implementations, device, rows, classes, bench_cases.DTYPES[dtype_name])
    steps["copy"] = copy
    timings: Dict[str, Timing] = time_interleaved(steps, device, args.warmup, args.repeats, on_step)
    saved = {name: saved_tensor_bytes(forward, inputs) for name, forward in forwards.items()}
    del steps, forwards, inputs

    element_size = torch.empty((), dtype=bench_cases.DTYPES[dtype_name]).element_size()
    loss_bytes = 2 * rows * classes * element_size  # logits read once + gradient written once
    copy_gbps = copy_bytes(args.copy_mib) / timings["copy"].median_ms / 1e6
    result = []
    for name, timing in timings.items():
        moved = copy_bytes(args.copy_mib) if name == "copy" else loss_bytes
        gbps = moved / timing.median_ms / 1e6
        row = {
            "loss": case.name, "rows": rows, "classes": classes, "dtype": dtype_name, "implementation": name,
            "warmup": args.warmup, "repeats": args.repeats,
            "ms_median": f"{timing.median_ms:.6g}", "ms_min": f"{timing.min_ms:.6g}",
            "ms_max": f"{timing.max_ms:.6g}", "first_call_s": f"{timing.first_call_s:.3f}",
            "page_faults_median": f"{timing.median_page_faults:g}",
            "bytes_moved": moved, "effective_gbps": f"{gbps:.6g}", "copy_gbps": f"{copy_gbps:.6g}",
            "fraction_of_copy": f"{gbps / copy_gbps:.6g}",
            "saved_bytes": saved[name][0] if name in saved else "",
            "saved_beyond_inputs_bytes": saved[name][1] if name in saved else "",
        }
        for peer in report.PEERS:
            if name != "copy" and peer in timings:
                row[f"speedup_vs_{peer}"] = f"{timings[peer].median_ms / timing.median_ms:.6g}"
        result.append(row)
    return result


# ---- The run ----

def shapes_for(device: torch.device, args: argparse.Namespace) -> List[Tuple[int, int]]:
    if args.shapes:
        return args.shapes
    if args.quick:
        return list(bench_cases.QUICK_SHAPES)
    return bench_cases.SHAPES + (bench_cases.GPU_ONLY_SHAPES if device.type == "cuda" else [])


def run_benchmark(args: argparse.Namespace, run_id: str) -> Dict[Path, List[Dict]]:
    """Measure everything `args` asks for in this process, appending each case's rows to its device's CSV;
    return the rows per CSV."""
    torch.set_num_threads(args.threads)
    # The reference's argument checks call .item(), so torch.compile breaks its graph there by design;
    # the warning about it would only interleave with the progress bar.
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    losses = bench_cases.cases_by_name(args.losses)
    plan = []
    for device_type in args.devices:
        device = torch.device(device_type)
        for case in losses:
            implementations = implementations_for(case, device, args.implementations)
            for rows, classes in shapes_for(device, args):
                for dtype_name in args.dtypes:
                    plan.append((device, case, implementations, rows, classes, dtype_name))
    for device_type in args.devices:
        device = torch.device(device_type)
        if not fused_runs_on(device):
            print(f"note: lossext has no kernels for {device} in this build ({lossext.backend()} backend): "
                  f"its rows are skipped there", file=sys.stderr)

    # Read before any lossext row pins a mode: what users get on each device.
    default_modes = {device: lossext.losses.ops.gradient_mode(device) for device, *_ in plan}
    run_columns = {
        "run_id": run_id, "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "git_commit": git_commit(), "torch_version": torch.__version__, "threads": args.threads,
        "environment": environment_label(dict(os.environ)), "allocator_settings": allocator_settings(dict(os.environ)),
    }
    # One step per implementation plus copy, each called once untimed, then warm-up and repeats.
    total = sum((len(impls) + 1) * (1 + args.warmup + args.repeats) for _, _, impls, _, _, _ in plan)
    copies: Dict[torch.device, Step] = {}
    results: Dict[Path, List[Dict]] = {}
    try:
        with tqdm(total=total, unit="call", file=sys.stderr, dynamic_ncols=True) as progress:
            for device, case, implementations, rows, classes, dtype_name in plan:
                progress.set_description(f"{device.type} {case.name} ({rows}, {classes}) {dtype_name}")
                # Other people's jobs on a shared machine slow some rounds: the load says how busy it was.
                load_before = os.getloadavg()[0]
                if device not in copies:
                    copies[device] = copy_step(device, args.copy_mib)
                case_rows = measure_case(case, implementations, device, rows, classes, dtype_name, args,
                                         copies[device], lambda: progress.update())
                device_columns = {"device": device.type, "device_name": device_name(device),
                                  "default_gradient_mode": default_modes[device],
                                  "load_average": f"{(load_before + os.getloadavg()[0]) / 2:.2f}"}
                path = args.results_dir / f"{results_stem(device)}.csv"
                complete_rows = [{**dict.fromkeys(report.COLUMNS, ""), **run_columns, **device_columns, **row}
                                 for row in case_rows]
                # Written case by case, so a run killed part-way (say, out of memory) keeps what it measured.
                report.append_csv(path, complete_rows)
                results.setdefault(path, []).extend(complete_rows)
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    finally:
        # Back to the process default (LOSSEXT_GRADIENT or the per-device choice) the lossext rows changed.
        lossext.set_gradient_mode(os.environ.get("LOSSEXT_GRADIENT") or None)
    return results


def final_report(paths: Sequence[Path], run_id: str) -> None:
    """Targets and the PNG for every CSV this run wrote, from the rows recorded under its run id."""
    for path in paths:
        rows = report.read_run(path, run_id)
        if not rows:
            continue
        print(report.format_targets(rows))
        png = path.with_suffix(".png")
        report.plot(rows, png)
        print(f"\nrows appended to {path}\nplot written to {png}")


def new_run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"


def without_option(argv: Sequence[str], option: str, takes_value: bool) -> List[str]:
    """argv without `option` (and its value, as `--option value` or `--option=value`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = takes_value
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def run_in_children(argv: Sequence[str], args: argparse.Namespace, default_envs: Sequence[bool]) -> int:
    """Each environment in turn, each loss in a process of its own (a process that measured every loss
    grew past this machine's 24 GB and was killed); one report of all. Returns the exit status: nonzero
    when a child failed (what it measured is still reported)."""
    run_id = new_run_id()
    child_argv = without_option(without_option(argv, "--both-envs", False), "--losses", True)
    failures = []
    for default_env in default_envs:
        for loss in args.losses:
            command = [sys.executable, str(Path(__file__).resolve()), *child_argv, "--losses", loss,
                       "--part-of-run", run_id] + (["--default-env"] if default_env else [])
            status = subprocess.run(command, env=wanted_environment(default_env)).returncode
            if status != 0:
                failures.append(f"the {'default' if default_env else 'steady'}-environment run of {loss} "
                                f"exited with {status}")
    stems = {results_stem(torch.device(d)) for d in args.devices}
    final_report([args.results_dir / f"{stem}.csv" for stem in sorted(stems)], run_id)
    for failure in failures:
        print(f"error: {failure}; its rows so far are in the CSV", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.both_envs:
        sys.exit(run_in_children(argv, args, [False, True]))
    if len(args.losses) > 1 and not args.part_of_run:
        sys.exit(run_in_children(argv, args, [args.default_env]))
    env = wanted_environment(args.default_env)
    if env != dict(os.environ):
        # glibc reads its malloc settings once, at process start: start again with the ones wanted.
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv], env)
    run_id = args.part_of_run or new_run_id()
    results = run_benchmark(args, run_id)
    for rows in results.values():
        print(report.format_table(rows))
    if not args.part_of_run:
        final_report(list(results), run_id)


if __name__ == "__main__":
    main()
