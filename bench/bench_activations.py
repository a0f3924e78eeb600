"""Forward+backward benchmark of the lossext activations against native PyTorch and the compiled reference.

For each activation, dtype (float32, bfloat16) and implementation it times
y = act(x); y.backward(g) on a 2^26-element tensor (median and max - min of
--repeats runs after --warmup runs; the implementations take turns within
each round, so load from other processes falls on all alike), and records the bytes autograd saves for
backward (measured with torch.autograd.graph.saved_tensors_hooks, each storage
counted once) and whether they are the input or the output. Implementations:

  lossext    lossext.<name> (the fused kernels)
  native     torch.nn.functional (or torch.<name>); for swish, which has no native
             op, the composition x * torch.sigmoid(beta * x)
  compiled   torch.compile(lossext.activation_reference.<name>)

gbps counts the least traffic a forward+backward can have: read x and write y,
then read g and one saved tensor and write dx: 5 tensors of the input's size.

Prints a table and appends CSV rows to bench/results/activations_cpu.csv:
device, torch, commit, activation, dtype, impl, ms_median, ms_spread, gbps, saved_bytes.
The device column also says how many threads ran and the malloc setting, since
glibc's default returns large freed blocks to the OS (page faults on every
allocation) while MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736
keeps them (steady state).

    python bench/bench_activations.py [--only relu,gelu] [--dtypes float32] [--repeats 7] [--no-csv]
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

import lossext
from lossext import activation_reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV_PATH = os.path.join(ROOT, "bench", "results", "activations_cpu.csv")
CSV_COLUMNS = ["device", "torch", "commit", "activation", "dtype", "impl", "ms_median", "ms_spread", "gbps",
               "saved_bytes"]

# (shape, channel count of the learnable parameter or None). 2^26 elements each.
ELEMENTWISE_SHAPE = (1 << 13, 1 << 13)
CHANNEL_SHAPE = (64, 256, 64, 64)  # (N, C, H, W) for PReLU and Swish with per-channel parameters
SOFTMAX_SHAPE = (1 << 16, 1 << 10)


def composed_swish(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(ref.channel_view(beta, x) * x)


# name -> (shape, parameter channels (0 = none, 1 = one shared value, C = per channel), lossext, native, reference)
CASES: Dict[str, Tuple[tuple, int, Callable, Callable, Callable]] = {
    "relu": (ELEMENTWISE_SHAPE, 0, lossext.relu, F.relu, ref.relu),
    "leaky_relu": (ELEMENTWISE_SHAPE, 0, lossext.leaky_relu, F.leaky_relu, ref.leaky_relu),
    "prelu": (CHANNEL_SHAPE, 256, lossext.prelu, F.prelu, ref.prelu),
    "elu": (ELEMENTWISE_SHAPE, 0, lossext.elu, F.elu, ref.elu),
    "selu": (ELEMENTWISE_SHAPE, 0, lossext.selu, F.selu, ref.selu),
    "silu": (ELEMENTWISE_SHAPE, 0, lossext.silu, F.silu, ref.silu),
    "swish_scalar_beta": (CHANNEL_SHAPE, 1, lossext.swish, composed_swish, ref.swish),
    "swish_channel_beta": (CHANNEL_SHAPE, 256, lossext.swish, composed_swish, ref.swish),
    "gelu": (ELEMENTWISE_SHAPE, 0, lossext.gelu, F.gelu, ref.gelu),
    "gelu_tanh": (ELEMENTWISE_SHAPE, 0, lambda x: lossext.gelu(x, approximate="tanh"),
                  lambda x: F.gelu(x, approximate="tanh"), lambda x: ref.gelu(x, approximate="tanh")),
    "sigmoid": (ELEMENTWISE_SHAPE, 0, lossext.sigmoid, torch.sigmoid, ref.sigmoid),
    "tanh": (ELEMENTWISE_SHAPE, 0, lossext.tanh, torch.tanh, ref.tanh),
    "hardtanh": (ELEMENTWISE_SHAPE, 0, lossext.hardtanh, F.hardtanh, ref.hardtanh),
    "softmax": (SOFTMAX_SHAPE, 0, lambda x: lossext.softmax(x, -1), lambda x: F.softmax(x, -1),
                lambda x: ref.softmax(x, -1)),
    "softmax_dim0": ((1 << 10, 1 << 16), 0, lambda x: lossext.softmax(x, 0), lambda x: F.softmax(x, 0),
                     lambda x: ref.softmax(x, 0)),
}


def commit() -> str:
    try:
        sha = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
        dirty = subprocess.call(["git", "diff", "--quiet", "HEAD"], cwd=ROOT) != 0
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_label() -> str:
    steady = os.environ.get("MALLOC_MMAP_THRESHOLD_") and os.environ.get("MALLOC_TRIM_THRESHOLD_")
    return f"cpu:{torch.get_num_threads()}threads:malloc-{'steady' if steady else 'default'}"


def make_inputs(shape: tuple, channels: int, dtype: torch.dtype):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(dtype).requires_grad_()
    g = torch.randn(shape, generator=generator, dtype=torch.float32).to(dtype)
    parameter = None
    if channels:
        init = torch.rand(channels, generator=generator) * 0.5 + 0.75
        parameter = init.to(dtype).requires_grad_()
    return x, g, parameter


def step(fn: Callable, x: torch.Tensor, g: torch.Tensor, parameter: Optional[torch.Tensor]) -> None:
    x.grad = None
    if parameter is not None:
        parameter.grad = None
    y = fn(x, parameter) if parameter is not None else fn(x)
    y.backward(g)


def saved_for_backward(fn: Callable, x: torch.Tensor, parameter: Optional[torch.Tensor]) -> Tuple[int, str]:
    """Bytes autograd keeps for backward (each storage once), and which of input/output/other they are."""
    storages: Dict[int, int] = {}
    kinds: List[str] = []
    packed: List[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x, parameter) if parameter is not None else fn(x)
    for t in packed:
        key = t.untyped_storage().data_ptr()
        storages[key] = t.untyped_storage().nbytes()
        if key == x.untyped_storage().data_ptr():
            kind = "input"
        elif key == y.untyped_storage().data_ptr():
            kind = "output"
        elif parameter is not None and key == parameter.untyped_storage().data_ptr():
            kind = "parameter"
        else:
            kind = f"other{tuple(t.shape)}"
        if kind not in kinds:
            kinds.append(kind)
    del y
    return sum(storages.values()), "+".join(kinds) or "-"


def time_interleaved(functions: Dict[str, Callable], x, g, parameter, warmup: int,
                     repeats: int) -> Dict[str, List[float]]:
    """Milliseconds per forward+backward of each implementation, one of each per round, so that load
    from other processes falls on all of them alike."""
    for fn in functions.values():
        for _ in range(warmup):
            step(fn, x, g, parameter)
    times: Dict[str, List[float]] = {impl: [] for impl in functions}
    for _ in range(repeats):
        for impl, fn in functions.items():
            start = time.perf_counter()
            step(fn, x, g, parameter)
            times[impl].append((time.perf_counter() - start) * 1e3)
    return times


HEADER = f"{'activation':<19} {'dtype':<9} {'impl':<9} {'ms':>8} {'spread':>7} {'GB/s':>6} {'saved MB':>9}  saves"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated activations (default: all)")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--impls", default="lossext,native,compiled")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-csv", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no header lines (for the child processes)")
    parser.add_argument("--in-process", action="store_true",
                        help="run every activation in this process (default: one child process each)")
    args = parser.parse_args()

    names = [n for n in args.only.split(",") if n] or list(CASES)
    if len(names) > 1 and not args.in_process:
        # One process per activation: freed 256 MiB tensors and compiled graphs would otherwise pile up
        # (with the steady-state malloc settings, nothing is returned to the OS) until the OOM killer comes.
        print(f"torch {torch.__version__}, {device_label()}, lossext backend {lossext.backend()}")
        print(HEADER, flush=True)
        forwarded = ["--dtypes", args.dtypes, "--impls", args.impls, "--warmup", str(args.warmup), "--repeats",
                     str(args.repeats)] + (["--no-csv"] if args.no_csv else [])
        for name in names:
            subprocess.run([sys.executable, os.path.abspath(__file__), "--only", name, "--in-process", "--quiet",
                            *forwarded], check=True)
        return
    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    impls = args.impls.split(",")
    rows = []
    if not args.quiet:
        print(f"torch {torch.__version__}, {device_label()}, lossext backend {lossext.backend()}")
        print(HEADER)
    for name in names:
        shape, channels, ours, native, reference = CASES[name]
        compiled = torch.compile(reference, fullgraph=True)
        available = {"lossext": ours, "native": native, "compiled": compiled}
        functions = {impl: available[impl] for impl in impls}
        for dtype in dtypes:
            x, g, parameter = make_inputs(shape, channels, dtype)
            all_times = time_interleaved(functions, x, g, parameter, args.warmup, args.repeats)
            results = {}
            for impl, fn in functions.items():
                times = all_times[impl]
                median = statistics.median(times)
                saved_bytes, saves = saved_for_backward(fn, x, parameter)
                traffic = 5 * x.numel() * x.element_size()
                results[impl] = median
                row = {"device": device_label(), "torch": torch.__version__, "commit": commit(), "activation": name,
                       "dtype": str(dtype).replace("torch.", ""), "impl": impl, "ms_median": f"{median:.3f}",
                       "ms_spread": f"{max(times) - min(times):.3f}", "gbps": f"{traffic / median / 1e6:.2f}",
                       "saved_bytes": saved_bytes}
                rows.append(row)
                print(f"{name:<19} {row['dtype']:<9} {impl:<9} {median:8.2f} {max(times) - min(times):7.2f} "
                      f"{float(row['gbps']):6.2f} {saved_bytes / 2**20:9.1f}  {saves}", flush=True)
            if "lossext" in results:
                ratios = [f"{results[k] / results['lossext']:.2f}x vs {k}" for k in results if k != "lossext"]
                print(f"{'':<19} {'':<9} lossext speed-up: {', '.join(ratios)}", flush=True)
            del x, g, parameter
    if not args.no_csv:
        new_file = not os.path.exists(CSV_PATH)
        os.makedirs(os.path.dirname(CSV_PATH), exist_ok=True)
        with open(CSV_PATH, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            if new_file:
                writer.writeheader()
            writer.writerows(rows)
        if not args.quiet:
            print(f"appended {len(rows)} rows to {os.path.relpath(CSV_PATH, ROOT)}")


if __name__ == "__main__":
    main()
