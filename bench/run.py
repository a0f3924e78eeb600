"""Benchmark lossext's fused losses, activations and classifier heads against their peers, as a training loop
runs them.

    python bench/run.py                         # every loss, in the steady state (re-executes itself with it)
    python bench/run.py --quick                 # cross-entropy, two shapes, few repeats
    python bench/run.py --quick --both-envs     # the main job: the steady state, then glibc's defaults
    python bench/run.py --quick --ops all       # every loss, one process each
    python bench/run.py --family activations    # every activation (--ops relu,gelu for some)
    python bench/run.py --family heads --quick  # the fused linear head, cross-entropy (--ops all: every loss)
    python bench/run.py --default-env           # glibc's default allocator only
    python bench/run.py --results-dir bench/results   # record into the tracked results

Every timed step is a user's: the inputs' gradients set to None, forward,
backward (`x.grad = None; f(x, t).backward()`; an activation's y.backward(g)).
Each implementation's steps are interleaved, round by round, with the others'
and with a copy that measures the machine's bandwidth. The steady state is
tcmalloc, preloaded, when it is installed (glibc's MALLOC_* settings do not
keep this machine steady; bench/README.md says why), else tuned glibc, or as
--steady-allocator says. Results: a table on stdout (median, mean, min-max and
page faults per step), rows appended to <results dir>/<device>.csv (one schema
for every family) and <results dir>/<device>-<family>.png; the results dir is
bench/results/local/ (ignored by git) unless --results-dir says otherwise.
See bench/README.md.
"""

import argparse
import datetime
import gc
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

if __package__ in (None, ""):
    # Run as a script (python bench/run.py): make the repository root importable as it is under -m.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import lossext  # noqa: E402
from bench import cases as bench_cases  # noqa: E402
from bench import environment, report  # noqa: E402
from bench.activation_family import ActivationFamily  # noqa: E402
from bench.harness import (REPO_ROOT, Family, Shape, device_name, fused_runs_on, git_commit,  # noqa: E402
                           measure_case, results_stem)
from bench.head_family import HeadFamily  # noqa: E402
from bench.loss_family import LossFamily  # noqa: E402
from bench.measure import Step, copy_step  # noqa: E402

FAMILIES: Dict[str, Family] = {family.name: family for family in (LossFamily(), ActivationFamily(), HeadFamily())}
# Ignored by git, so that benchmarking leaves a clone clean; bench/results/ itself holds the published rows.
DEFAULT_RESULTS_DIR = REPO_ROOT / "bench" / "results" / "local"
QUICK_WARMUP, QUICK_REPEATS = 1, 5
FULL_WARMUP, FULL_REPEATS = 2, 7


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=list(FAMILIES), default="losses")
    environments = parser.add_mutually_exclusive_group()
    environments.add_argument("--default-env", action="store_true",
                              help="run with glibc's default allocator instead of the steady state")
    environments.add_argument("--both-envs", action="store_true",
                              help="run the steady state, then the default environment, and report both")
    parser.add_argument("--steady-allocator", choices=("auto", *environment.STEADY_ALLOCATORS), default="auto",
                        help="the steady state's allocator (auto: tcmalloc when installed, else glibc-tuned)")
    parser.add_argument("--quick", action="store_true",
                        help=f"the family's quick ops (losses: shapes {bench_cases.QUICK_SHAPES}), "
                             f"{QUICK_WARMUP} warm-up, {QUICK_REPEATS} repeats")
    parser.add_argument("--ops", "--losses", dest="ops", type=_names,
                        help="comma-separated ops of the family, or all (default all; with --quick, the family's "
                             f"quick ones: {', '.join(f'{f.name} {list(f.quick_ops)}' for f in FAMILIES.values())})")
    parser.add_argument("--dtypes", type=_names, default=list(bench_cases.DTYPES),
                        help=f"comma-separated, from {list(bench_cases.DTYPES)}")
    parser.add_argument("--shapes", type=_shapes,
                        help="comma-separated, sizes joined by x (losses: NxC; heads: NxHxV), overriding every "
                             "case's shapes")
    parser.add_argument("--implementations", type=_names,
                        help="comma-separated (default: " +
                             "; ".join(f"{f.name} {list(f.default_implementations)}" for f in FAMILIES.values()) +
                             "; the copy is always measured)")
    parser.add_argument("--devices", type=_names, help="comma-separated (default: cpu, and cuda when available)")
    parser.add_argument("--warmup", type=int, help="untimed steps per implementation after its first")
    parser.add_argument("--repeats", type=int, help="timed steps per implementation")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch CPU threads (default: the CPUs this process may run on)")
    parser.add_argument("--copy-mib", type=int, default=512, help="size of each copy-bandwidth buffer, MiB")
    parser.add_argument("--no-memory", action="store_true",
                        help="heads: leave peak_extra_bytes empty (its CPU measurement starts a process per "
                             "implementation, which compiles and runs its step again)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR,
                        help="where the CSVs and plots go (default: bench/results/local/, ignored by git)")
    # Set on the child runs of --both-envs and of several ops: share one run id, and leave the plot and
    # targets to the parent.
    parser.add_argument("--part-of-run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    family = FAMILIES[args.family]
    if args.implementations is None:
        args.implementations = list(family.default_implementations)
    unknown = set(args.implementations) - set(family.implementations)
    unknown_dtypes = set(args.dtypes) - set(bench_cases.DTYPES)
    if unknown or unknown_dtypes:
        parser.error(f"unknown implementation(s)/dtype(s) for {family.name}: {sorted(unknown | unknown_dtypes)} "
                     f"(implementations: {list(family.implementations)})")
    if args.ops is None:
        args.ops = list(family.quick_ops) if args.quick else ["all"]
    if args.ops == ["all"]:
        args.ops = family.op_names()
    unknown_ops = sorted(set(args.ops) - set(family.op_names()))
    if unknown_ops:  # before any child starts
        parser.error(f"unknown {family.name}: {unknown_ops}; known: {family.op_names()}")
    if args.shapes and family.shape_rank and any(len(shape) != family.shape_rank for shape in args.shapes):
        parser.error(f"{family.name} take shapes of {family.shape_rank} sizes, such as 4096x32000")
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else FULL_WARMUP
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.devices is None:
        args.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return args


def family_of(args: argparse.Namespace) -> Family:
    """The family --family names, with the options that concern it."""
    if args.family == HeadFamily.name:
        return HeadFamily(measure_memory=not args.no_memory)
    return FAMILIES[args.family]


def _names(text: str) -> List[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _shapes(text: str) -> List[Shape]:
    return [tuple(int(size) for size in item.lower().split("x")) for item in _names(text)]


# ---- The run ----

def run_benchmark(args: argparse.Namespace, run_id: str) -> Dict[Path, List[Dict]]:
    """Measure everything `args` asks for in this process, appending each case's rows to its device's CSV;
    return the rows per CSV."""
    family = family_of(args)
    torch.set_num_threads(args.threads)
    # The loss references' argument checks call .item(), so torch.compile breaks its graph there by design;
    # the warning about it would only interleave with the progress bar.
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    plan = []
    for device in map(torch.device, args.devices):
        for op in args.ops:
            implementations = family.implementations_for(op, device, args.implementations)
            for shape in args.shapes or family.shapes(op, device, args.quick):
                for dtype_name in args.dtypes:
                    plan.append((device, op, implementations, shape, dtype_name))
    for device in map(torch.device, args.devices):
        if not fused_runs_on(device):
            print(f"note: lossext has no kernels for {device} in this build ({lossext.backend()} backend): "
                  f"its rows are skipped there", file=sys.stderr)

    # Read before any lossext row pins a mode: what users get on each device.
    default_modes = {device: family.default_gradient_mode(device) for device, *_ in plan}
    run_columns = {
        "run_id": run_id, "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "git_commit": git_commit(), "torch_version": torch.__version__, "threads": args.threads,
        "environment": environment.running_allocator(), "allocator_settings": environment.allocator_settings(),
    }
    # One step per implementation plus copy, each called once untimed, then warm-up and repeats.
    total = sum((len(impls) + 1) * (1 + args.warmup + args.repeats) for _, _, impls, _, _ in plan)
    copies: Dict[torch.device, Step] = {}
    results: Dict[Path, List[Dict]] = {}
    try:
        with tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True) as progress:
            for device, op, implementations, shape, dtype_name in plan:
                progress.set_description(f"{device.type} {op} {report.format_shape(shape)} {dtype_name}")
                # Other people's jobs on a shared machine slow some rounds: the load says how busy it was.
                load_before = os.getloadavg()[0]
                if device not in copies:
                    copies[device] = copy_step(device, args.copy_mib)
                case_rows = measure_case(family, op, shape, dtype_name, implementations, device, args.warmup,
                                         args.repeats, copies[device], args.copy_mib, lambda: progress.update())
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
    """Targets and a PNG per family for every CSV this run wrote, from the rows recorded under its run id."""
    for path in paths:
        rows = report.read_run(path, run_id)
        if not rows:
            continue
        targets = report.format_targets(rows)
        if targets:
            print(targets)
        print(f"\nrows appended to {path}")
        for family in dict.fromkeys(row["family"] for row in rows):
            png = path.with_name(f"{path.stem}-{family}.png")
            try:
                report.plot([row for row in rows if row["family"] == family], png)
            except ImportError as error:  # a bare GPU machine (scripts/gpu_check.sh) may lack matplotlib
                print(f"no plot ({error}): the rows are in the CSV")
                continue
            print(f"plot written to {png}")


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


def run_in_children(argv: Sequence[str], args: argparse.Namespace, allocators: Sequence[str]) -> int:
    """Each allocator in turn, each op in a process of its own (a process that measured every loss grew past
    this machine's 24 GB and was killed); one report of all. Returns the exit status: nonzero when a child
    failed (what it measured is still reported)."""
    run_id = new_run_id()
    child_argv = without_option(without_option(without_option(argv, "--both-envs", False), "--ops", True),
                                "--losses", True)
    failures = []
    for allocator in allocators:
        for op in args.ops:
            command = [sys.executable, str(Path(__file__).resolve()), *child_argv, "--ops", op,
                       "--part-of-run", run_id] + (["--default-env"] if allocator == environment.DEFAULT else [])
            status = subprocess.run(command, env=environment.environment_for(allocator, os.environ)).returncode
            if status != 0:
                failures.append(f"the {allocator}-allocator run of {op} exited with {status}")
    stems = {results_stem(torch.device(d)) for d in args.devices}
    final_report([args.results_dir / f"{stem}.csv" for stem in sorted(stems)], run_id)
    for failure in failures:
        print(f"error: {failure}; its rows so far are in the CSV", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    # Chosen once, here, and passed on: the children and the re-executed process take it as given.
    steady = environment.steady_allocator(args.steady_allocator)
    argv = without_option(argv, "--steady-allocator", True) + ["--steady-allocator", steady]
    if args.both_envs:
        sys.exit(run_in_children(argv, args, [steady, environment.DEFAULT]))
    allocator = environment.DEFAULT if args.default_env else steady
    if len(args.ops) > 1 and not args.part_of_run:
        sys.exit(run_in_children(argv, args, [allocator]))
    env = environment.environment_for(allocator, os.environ)
    if env != dict(os.environ):
        # The allocator is chosen at process start (LD_PRELOAD, glibc's MALLOC_*): start again with the one wanted.
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv], env)
    run_id = args.part_of_run or new_run_id()
    results = run_benchmark(args, run_id)
    for rows in results.values():
        print(report.format_table(rows))
    if not args.part_of_run:
        final_report(list(results), run_id)


if __name__ == "__main__":
    main()
