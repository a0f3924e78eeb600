"""Vocabulary-parallel losses (lossext.distributed) in real process groups: gloo on CPU, NCCL on GPUs.

Each world size starts its processes once (tests/distributed_cases.py, one thread each, bounded by a
timeout so that a hang fails instead of blocking), runs every case there, and each case here asserts
that it passed on every process.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest
import torch

import lossext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_cases  # noqa: E402

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and lossext.extension_loaded()),
                                reason="needs torch.distributed and lossext._C")

WORLDS = (2, 3)
TIMEOUT_S = 600
_results = {}


def _run(world: int, backend: str):
    """{case: [failure or None per process]} of one process group, started once per (world, backend)."""
    if (world, backend) in _results:
        return _results[world, backend]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_cases.py")
    with tempfile.TemporaryDirectory() as scratch:
        init_file = os.path.join(scratch, "rendezvous")
        environment = dict(os.environ, OMP_NUM_THREADS="1")
        processes = [subprocess.Popen([sys.executable, script, str(rank), str(world), init_file, scratch, backend],
                                      env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for rank in range(world)]
        outputs = []
        try:
            for process in processes:
                outputs.append(process.communicate(timeout=TIMEOUT_S)[0])
        except subprocess.TimeoutExpired:
            for process in processes:
                process.kill()
            pytest.fail(f"{backend} world {world}: the processes did not finish within {TIMEOUT_S} s")
        for rank, (process, output) in enumerate(zip(processes, outputs)):
            assert process.returncode == 0, f"{backend} world {world} rank {rank} exited {process.returncode}:\n{output}"
        per_rank = []
        for rank in range(world):
            with open(os.path.join(scratch, f"rank{rank}.json")) as results:
                per_rank.append(json.load(results))
    _results[world, backend] = {case: [results.get(case, "did not run") for results in per_rank]
                                for case in per_rank[0]}
    return _results[world, backend]


def _case_names():
    context = distributed_cases.Context(0, 2, torch.device("cpu"))
    return list(distributed_cases.cases(context))


BACKENDS = [
    "gloo",
    pytest.param("nccl", marks=pytest.mark.skipif(
        not (torch.cuda.is_available() and torch.cuda.device_count() >= 3 and torch.distributed.is_nccl_available()),
        reason="NCCL needs 3 GPUs")),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("case", _case_names())
def test_vocab_parallel(case, world, backend):
    failures = [(rank, failure) for rank, failure in enumerate(_run(world, backend)[case]) if failure is not None]
    assert not failures, "\n".join(f"rank {rank}: {failure}" for rank, failure in failures)
