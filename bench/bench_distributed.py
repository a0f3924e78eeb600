"""Benchmark of the vocabulary-parallel losses (lossext.distributed) over gloo processes on this machine.

    python bench/bench_distributed.py [--rows 4096] [--classes 32000] [--world 2] [--dtypes float32,bfloat16]
                                      [--losses cross_entropy,hinge,two_scale_cross_entropy] [--repeats 10]
                                      [--env steady|default] [--csv PATH]

One user step is `x.grad = None; loss = f(x, target); loss.backward()`, for
  sharded        lossext.distributed.<loss> of each process's (rows, classes / world) slice, world gloo
                 processes with one thread each
  loss_parallel  (cross-entropy) F.cross_entropy of the class-sharded DTensor under PyTorch's loss_parallel
  single         lossext.<loss> of the whole rows in one process with `world` threads (the same cores)
  single_torch   (cross-entropy) F.cross_entropy of the whole rows in one process with `world` threads
interleaved in rounds (sharded, loss_parallel, single, single_torch, then again), so a busy phase of
the machine hits all alike. A sharded step's time is process 0's, from a barrier to the end of its
backward (the collectives keep the processes in step). The table reports median and mean ms, minor
page faults per step (process 0), the speedup over `single` (its median over this one's), and the bytes all-reduced per call against
the logits' size. --env steady (default) preloads tcmalloc with its release rate 0
(bench/environment.py); --env default keeps glibc's defaults.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TWO_SCALE = dict(r1=1.0, r2=10.0, eta=0.01)
LOSS_ARGUMENTS = {"cross_entropy": {}, "hinge": dict(p=2.0, margin=0.5), "two_scale_cross_entropy": TWO_SCALE,
                  "cauchy_schwarz": {}, "l2": {}}


def worker(rank: int, world: int, init_file: str, options: dict) -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    import lossext
    import lossext.distributed as ldist
    from bench.measure import minor_page_faults
    from tests.distributed_cases import CollectiveCounter

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=600))
    rows, classes = options["rows"], options["classes"]
    sizes = [classes // world + (r < classes % world) for r in range(world)]
    offset = sum(sizes[:rank])
    results = []
    for dtype_name in options["dtypes"]:
        dtype = getattr(torch, dtype_name)
        torch.manual_seed(0)
        whole = (torch.randn(rows, classes) * 3).to(dtype)
        target = torch.randint(0, classes, (rows,))
        local = whole[:, offset:offset + sizes[rank]].clone().requires_grad_()
        whole_leaf = whole.clone().requires_grad_()
        for loss in options["losses"]:
            arguments = LOSS_ARGUMENTS[loss]
            steps = {"sharded": (local, lambda: getattr(ldist, loss)(local, target, class_sizes=sizes, **arguments),
                                 1)}
            if loss == "cross_entropy":
                from torch.distributed.device_mesh import init_device_mesh
                from torch.distributed.tensor import Shard, distribute_tensor
                from torch.distributed.tensor.parallel import loss_parallel

                mesh = init_device_mesh("cpu", (world,))
                logits = distribute_tensor(whole.clone(), mesh, [Shard(1)]).requires_grad_()

                def parallel_step():
                    with loss_parallel():
                        value = F.cross_entropy(logits, target)
                        value.backward()
                    return None
                steps["loss_parallel"] = (logits, parallel_step, 1)
                steps["single_torch"] = (whole_leaf, lambda: F.cross_entropy(whole_leaf, target), world)
            steps["single"] = (whole_leaf, lambda: getattr(lossext, loss)(whole_leaf, target, **arguments), world)
            counter = CollectiveCounter()
            with counter.active():
                local.grad = None
                steps["sharded"][1]().backward()
            samples = {name: [] for name in steps}
            faults = {name: [] for name in steps}
            for round_number in range(options["warmup"] + options["repeats"]):
                for name, (leaf, forward, threads) in steps.items():
                    alone = threads > 1  # a one-process step: process 0 runs it, the others wait
                    dist.barrier()
                    if alone and rank != 0:
                        dist.barrier()
                        continue
                    torch.set_num_threads(threads)
                    before = minor_page_faults()
                    start = time.perf_counter()
                    leaf.grad = None
                    value = forward()
                    if value is not None:
                        value.backward()
                    elapsed = time.perf_counter() - start
                    after = minor_page_faults()
                    torch.set_num_threads(1)
                    if alone:
                        dist.barrier()
                    if round_number >= options["warmup"]:
                        samples[name].append(elapsed * 1e3)
                        faults[name].append(after - before)
            if rank == 0:
                logits_bytes = rows * classes * whole.element_size()
                for name in steps:
                    results.append(dict(loss=loss, dtype=dtype_name, rows=rows, classes=classes, world=world,
                                        method=name, median_ms=statistics.median(samples[name]),
                                        mean_ms=statistics.fmean(samples[name]),
                                        faults_per_step=statistics.fmean(faults[name]),
                                        all_reduce_bytes=counter.all_reduce_bytes if name == "sharded" else "",
                                        logits_bytes=logits_bytes,
                                        collectives=" ".join(counter.calls) if name == "sharded" else ""))
    if rank == 0:
        with open(options["out"], "w") as out:
            json.dump(results, out)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--losses", default="cross_entropy,hinge,two_scale_cross_entropy")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--env", choices=("steady", "default"), default="steady")
    parser.add_argument("--csv", default=None)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        rank, init_file, options_file = args.worker
        with open(options_file) as options:
            options = json.load(options)
        worker(int(rank), options["world"], init_file, options)
        return

    from bench.environment import environment_for, steady_allocator

    allocator = steady_allocator("auto") if args.env == "steady" else "default"
    env = dict(environment_for(allocator, os.environ), OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    with tempfile.TemporaryDirectory() as scratch:
        options = dict(rows=args.rows, classes=args.classes, world=args.world, dtypes=args.dtypes.split(","),
                       losses=args.losses.split(","), warmup=args.warmup, repeats=args.repeats,
                       out=os.path.join(scratch, "results.json"))
        options_file = os.path.join(scratch, "options.json")
        with open(options_file, "w") as out:
            json.dump(options, out)
        processes = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(rank),
                                       os.path.join(scratch, "rendezvous"), options_file], env=env)
                     for rank in range(args.world)]
        codes = [process.wait() for process in processes]
        if any(codes):
            raise SystemExit(f"a worker failed: exit codes {codes}")
        with open(options["out"]) as results:
            results = json.load(results)
    single = {(r["loss"], r["dtype"]): r["median_ms"] for r in results if r["method"] == "single"}
    print(f"allocator: {allocator}; {args.world} gloo processes x 1 thread; single-process methods: "
          f"{args.world} threads")
    print(f"{'loss':<26}{'dtype':<10}{'method':<15}{'median ms':>10}{'mean ms':>10}{'faults':>8}"
          f"{'speedup':>10}  all-reduced per call / logits")
    for r in results:
        r["ratio_to_single"] = single[r["loss"], r["dtype"]] / r["median_ms"]
        reduced = (f"{r['all_reduce_bytes'] / 2**10:.0f} KiB / {r['logits_bytes'] / 2**20:.0f} MiB "
                   f"({r['collectives']})" if r["all_reduce_bytes"] != "" else "")
        print(f"{r['loss']:<26}{r['dtype']:<10}{r['method']:<15}{r['median_ms']:>10.2f}{r['mean_ms']:>10.2f}"
              f"{r['faults_per_step']:>8.0f}{r['ratio_to_single']:>10.2f}  {reduced}")
    if args.csv:
        with open(args.csv, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(results[0]) + ["allocator"])
            writer.writeheader()
            for r in results:
                writer.writerow(dict(r, allocator=allocator))


if __name__ == "__main__":
    main()
