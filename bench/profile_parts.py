"""Where a fused loss's time goes, from timings of its isolated parts (no profiler needed).

    python bench/profile_parts.py [--loss cross_entropy] [--shape 4096x32000] [--dtype fp32]

At 1 thread and at all threads, interleaved, on one (N, C) case:
  copy            dst.copy_(src) of the logits' size: the memory yardstick (1 read + 1 write)
  torch.exp       torch.exp(logits, out=buffer): PyTorch's vectorised exp, 1 read + 1 write
  forward         the fused forward without gradient (1 read: max, exp, sums)
  kernel          <loss>_forward_out into a preallocated buffer (1 read + 1 write: the gradient too)
  forward+backward lossext.<loss> and autograd.grad in the device's default gradient mode
The ratio of the 1-thread to the all-threads time says whether a part uses every core; the
differences kernel - forward (the gradient pass) and forward - copy/2 (the arithmetic) say
what to optimise. Run it under a steady allocator (tcmalloc preloaded; bench/README.md).
"""

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench import cases as bench_cases  # noqa: E402
from bench.measure import time_interleaved  # noqa: E402
from bench.environment import allocator_settings, running_allocator  # noqa: E402
from bench.harness import cpu_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", default="cross_entropy")
    parser.add_argument("--shape", default="4096x32000")
    parser.add_argument("--dtype", default="fp32", choices=list(bench_cases.DTYPES))
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    rows, classes = (int(v) for v in args.shape.lower().split("x"))
    dtype = bench_cases.DTYPES[args.dtype]
    (case,) = bench_cases.cases_by_name([args.loss])
    device = torch.device("cpu")

    logits = (2 * torch.randn(rows, classes)).to(dtype).requires_grad_()
    target = case.make_target(rows, classes, device, torch.Generator(device=device).manual_seed(0))
    kwargs = dict(case.kwargs)
    detached = logits.detach()
    buffer = torch.zeros_like(detached)
    source = torch.ones_like(detached)

    def forward_backward() -> None:
        torch.autograd.grad(case.fused()(logits, target, **kwargs), logits)

    def forward() -> None:
        with torch.no_grad():
            case.fused()(detached, target, **kwargs)

    steps = {"copy": lambda: buffer.copy_(source), "torch.exp": lambda: torch.exp(detached, out=buffer),
             "forward": forward}
    if case.kernel is not None:
        steps["kernel"] = lambda: case.kernel(detached, target, buffer, kwargs)
    steps["forward+backward"] = forward_backward

    all_threads = len(os.sched_getaffinity(0))
    print(f"{args.loss} ({rows}, {classes}) {args.dtype} on {cpu_model()}, allocator: {running_allocator()} "
          f"({allocator_settings()}){' (not the steady state)' if running_allocator() == 'default' else ''}")
    medians = {}
    for threads in (1, all_threads):
        torch.set_num_threads(threads)
        timings = time_interleaved(steps, device, warmup=1, repeats=args.repeats)
        medians[threads] = {name: timing.median_ms for name, timing in timings.items()}
    print(f"{'part':<18} {'1 thread ms':>12} {f'{all_threads} threads ms':>14} {'thread speedup':>15}")
    for name in steps:
        one, many = medians[1][name], medians[all_threads][name]
        print(f"{name:<18} {one:>12.1f} {many:>14.1f} {one / many:>15.2f}")


if __name__ == "__main__":
    main()
