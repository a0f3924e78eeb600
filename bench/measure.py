"""Timing primitives: a user's training step, interleaved repeats, the machine's copy bandwidth, and the bytes
autograd saves."""

import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

Step = Callable[[], None]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Wall-clock samples of one implementation, in milliseconds."""

    samples_ms: List[float]
    page_faults: List[int]  # minor page faults of this process during each sample: 0 in a steady state
    first_call_s: float  # the untimed first call: torch.compile's compile time, or a first-touch cost

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)

    def fraction_within(self, tolerance: float) -> float:
        """The share of samples within `tolerance` (0.1 = 10%) of the median: 1 in a steady state, about
        half when every other step page-faults its output in again."""
        median = self.median_ms
        return sum(abs(s - median) <= tolerance * median for s in self.samples_ms) / len(self.samples_ms)

    @property
    def median_page_faults(self) -> float:
        return statistics.median(self.page_faults)

    @property
    def mean_page_faults(self) -> float:
        return statistics.fmean(self.page_faults)


def minor_page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_call(step: Step, device: torch.device) -> float:
    """Seconds one call of `step` takes, device work included."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def time_interleaved(steps: Dict[str, Step], device: torch.device, warmup: int, repeats: int,
                     on_step: Callable[[], None] = lambda: None) -> Dict[str, Timing]:
    """Time every step `repeats` times after `warmup` calls, round-robin.

    Round-robin rather than one implementation after another, because this
    machine is shared: a burst of someone else's work then slows every
    implementation's sample in that round alike, and the ratios stay fair.
    Each step's first call is timed separately (it includes torch.compile's
    compilation) and kept out of the samples.
    """
    first_call_s = {}
    for name, step in steps.items():
        first_call_s[name] = time_call(step, device)
        on_step()
    for _ in range(warmup):
        for step in steps.values():
            step()
            on_step()
    samples: Dict[str, List[float]] = {name: [] for name in steps}
    page_faults: Dict[str, List[int]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            faults_before = minor_page_faults()
            samples[name].append(time_call(step, device) * 1e3)
            page_faults[name].append(minor_page_faults() - faults_before)
            on_step()
    return {name: Timing(samples[name], page_faults[name], first_call_s[name]) for name in steps}


def user_step(forward: Callable[[], torch.Tensor], leaves: Sequence[torch.Tensor],
              grad_output: Optional[torch.Tensor] = None) -> Step:
    """A training step as a user's loop runs it: drop the leaves' gradients, forward, backward.

    Dropping `.grad` (as `optimizer.zero_grad()` does by default) frees last
    step's gradient inside the step, so whether the allocator hands that memory
    back for this step's gradient, or fresh pages that fault in, is measured too.
    """

    def step() -> None:
        for leaf in leaves:
            leaf.grad = None
        forward().backward(grad_output)

    return step


def copy_step(device: torch.device, mebibytes: int) -> Step:
    """`dst.copy_(src)` on two preallocated fp32 buffers of `mebibytes` MiB each: the bandwidth yardstick."""
    elements = mebibytes * 2**20 // 4
    src = torch.ones(elements, device=device)
    dst = torch.zeros(elements, device=device)  # written once here so the timed copies take no page faults

    def step() -> None:
        dst.copy_(src)

    return step


def copy_bytes(mebibytes: int) -> int:
    """Bytes one copy_step moves: the buffer read once and written once."""
    return 2 * mebibytes * 2**20


def saved_tensor_bytes(forward: Callable[[], torch.Tensor], inputs: Sequence[torch.Tensor]) -> Tuple[int, int]:
    """Bytes of the distinct storages autograd packs for backward while `forward` runs: all of them,
    and those beyond the storages of `inputs` (which the caller keeps alive anyway).

    The storage, not the tensor, is what stays alive, so views of one buffer
    count once and a view of a large buffer counts the whole buffer.
    """
    storages: Dict[tuple, int] = {}

    def key(tensor: torch.Tensor) -> tuple:
        return tensor.device, tensor.untyped_storage().data_ptr()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[key(tensor)] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = forward()
    del loss
    input_keys = {key(tensor) for tensor in inputs}
    total = sum(storages.values())
    return total, total - sum(nbytes for k, nbytes in storages.items() if k in input_keys)
