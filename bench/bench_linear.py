"""Benchmark of the fused classifier head (lossext.linear_cross_entropy) against its peers, on CPU.

    python bench/bench_linear.py [--shape 4096x512x32000] [--dtypes float32,bfloat16] [--rounds 5]
                                 [--steps 2] [--env steady|default] [--methods a,b] [--no-memory] [--csv PATH]

One user step is `x.grad = W.grad = None; loss = head(x, W, target); loss.backward()`, for
  products          the three matrix products alone: x W^T, G W and G^T x (G: the logits buffer)
  lossext           lossext.linear_cross_entropy (fused head, default chunking)
  unfused           F.cross_entropy(F.linear(x, W), target)
  torch_lce         F.linear_cross_entropy (its reference path, options=None)
  torch_lce_chunked F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())
  compiled_unfused  torch.compile of the unfused head
Every method runs in its own child process, all alive at once and driven one at a time in rounds
(method 1, 2, ..., then again), so a slow phase of a loaded machine hits every method alike; the
table reports the median and mean step time over all rounds, minor page faults per step, and the
ratio to the products measured in the same rounds.

--env steady (default) starts the children with MALLOC_MMAP_THRESHOLD_=4294967296
MALLOC_TRIM_THRESHOLD_=68719476736 (freed memory stays mapped, as in a training loop that reuses
it); --env default keeps glibc's defaults, where each fresh large tensor page-faults.

Peak memory (unless --no-memory): a separate child per method, started with
MALLOC_MMAP_THRESHOLD_=131072 so that every allocation of 128 KiB or more is its own mapping,
returned to the OS when freed; after two warm-up steps and with the gradients cleared, it resets
the kernel's resident-set high-water mark (writing 5 to /proc/self/clear_refs), runs one step and
reports VmHWM minus the resident size before the step minus the bytes of the returned gradients:
the memory the step itself allocated at its peak, above its inputs and outputs.
"""

import argparse
import csv
import gc
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

METHODS = ["products", "lossext", "unfused", "torch_lce", "torch_lce_chunked", "compiled_unfused"]
STEADY_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def make_step(method, rows, hidden, classes, dtype_name):
    """(step function, gradient tensors' owner) for one method; the step runs one forward+backward."""
    import torch
    import torch.nn.functional as F

    import lossext

    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(rows, hidden, generator=generator) * 0.5).to(dtype).requires_grad_(True)
    weight = (torch.randn(classes, hidden, generator=generator) / hidden**0.5).to(dtype).requires_grad_(True)
    target = torch.randint(0, classes, (rows,), generator=generator)

    def unfused(x, weight, target):
        return F.cross_entropy(F.linear(x, weight), target)

    if method == "products":
        def loss_and_backward():
            with torch.no_grad():
                logits = x @ weight.t()
                x.grad = logits @ weight
                weight.grad = logits.t() @ x
    else:
        if method == "lossext":
            head = lossext.linear_cross_entropy
        elif method == "unfused":
            head = unfused
        elif method == "torch_lce":
            head = F.linear_cross_entropy
        elif method == "torch_lce_chunked":
            from torch.nn import LinearCrossEntropyOptions

            def head(x, weight, target):
                return F.linear_cross_entropy(x, weight, target, options=LinearCrossEntropyOptions())
        elif method == "compiled_unfused":
            head = torch.compile(unfused)
        else:
            raise ValueError(f"unknown method {method!r}")

        def loss_and_backward():
            head(x, weight, target).backward()

    def step():
        x.grad = None
        weight.grad = None
        loss_and_backward()

    return step, (x, weight)


def resident_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(connection, method, shape, dtype_name, threads):
    import torch

    torch.set_num_threads(threads)
    step, tensors = make_step(method, *shape, dtype_name)
    for _ in range(2):
        step()
    connection.send(("ready", None))
    while True:
        command, argument = connection.recv()
        if command == "time":
            times, faults = [], []
            for _ in range(argument):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            connection.send(("times", (times, faults)))
        elif command == "memory":
            for tensor in tensors:
                tensor.grad = None
            gc.collect()
            before = resident_kib("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            step()
            peak = resident_kib("VmHWM")
            returned = sum(t.grad.nbytes for t in tensors if t.grad is not None)
            connection.send(("memory", (peak - before) * 1024 - returned))
        else:
            connection.send(("bye", None))
            return


def start_children(methods, shape, dtype_name, threads, env):
    saved = dict(os.environ)
    os.environ.update(env)
    context = mp.get_context("spawn")
    children = {}
    try:
        for method in methods:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=child, args=(child_end, method, shape, dtype_name, threads))
            process.start()
            children[method] = (process, parent_end)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for method, (_, connection) in children.items():
        status, _ = connection.recv()
        assert status == "ready", (method, status)
    return children


def stop_children(children):
    for process, connection in children.values():
        connection.send(("quit", None))
        connection.recv()
        process.join()


def measure_memory(methods, shape, dtype_name, threads):
    peaks = {}
    for method in methods:  # one at a time: peaks of concurrent children would not overlap
        children = start_children([method], shape, dtype_name, threads, MEMORY_ENV)
        connection = children[method][1]
        connection.send(("memory", None))
        peaks[method] = connection.recv()[1]
        stop_children(children)
    return peaks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="4096x512x32000", help="N x H x V")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per method per round")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--env", choices=["steady", "default"], default="steady")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--csv", help="append one row per measurement to this CSV file")
    args = parser.parse_args()

    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    methods = args.methods.split(",")
    env = STEADY_ENV if args.env == "steady" else {}
    rows_out = []
    for dtype_name in args.dtypes.split(","):
        children = start_children(methods, shape, dtype_name, args.threads, env)
        times = {m: [] for m in methods}
        faults = {m: [] for m in methods}
        for _ in range(args.rounds):
            for method in methods:
                connection = children[method][1]
                connection.send(("time", args.steps))
                step_times, step_faults = connection.recv()[1]
                times[method] += step_times
                faults[method] += step_faults
        stop_children(children)
        peaks = {} if args.no_memory else measure_memory(methods, shape, dtype_name, args.threads)

        load = os.getloadavg()[0]
        print(f"\n(N, H, V) = {shape}, {dtype_name}, env {args.env}, {args.threads} threads, "
              f"{args.rounds} rounds x {args.steps} steps, load average {load:.2f}")
        base = statistics.median(times["products"]) if "products" in times else None
        lossext_median = statistics.median(times["lossext"]) if "lossext" in times else None
        print(f"{'method':<18} {'median ms':>10} {'mean ms':>9} {'faults/step':>12} {'x products':>11} "
              f"{'lossext faster':>15} {'peak MiB':>9}")
        for method in methods:
            median = statistics.median(times[method])
            mean = statistics.fmean(times[method])
            ratio = f"{median / base:.3f}" if base else "-"
            speedup = f"{median / lossext_median:.2f}x" if lossext_median else "-"
            peak = peaks.get(method)
            peak_text = f"{peak / 2**20:.0f}" if peak is not None else "-"
            print(f"{method:<18} {median * 1e3:>10.1f} {mean * 1e3:>9.1f} {statistics.fmean(faults[method]):>12.0f} "
                  f"{ratio:>11} {speedup:>15} {peak_text:>9}")
            rows_out.append({"shape": args.shape, "dtype": dtype_name, "env": args.env, "method": method,
                             "median_ms": median * 1e3, "mean_ms": mean * 1e3,
                             "faults_per_step": statistics.fmean(faults[method]),
                             "ratio_to_products": median / base if base else "",
                             "peak_bytes": peak if peak is not None else "", "load": load,
                             "threads": args.threads, "machine": platform.processor() or platform.machine()})
    if args.csv and rows_out:
        new = not os.path.exists(args.csv)
        with open(args.csv, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows_out[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows_out)


if __name__ == "__main__":
    main()
