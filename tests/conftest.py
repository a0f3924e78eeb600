"""Shared fixtures (devices, backends, gradient modes) and the one tolerance table of both op families."""

import os
import tempfile
from dataclasses import dataclass
from typing import Dict, Tuple

# torch.compile's caches (TORCHINDUCTOR_CACHE_DIR, shared by every process of the user) key a graph by
# torch's version and the graph, not by lossext's: graphs traced with an earlier build's autograd formulas
# replay against the new ops (seen after ELU/SELU's backward began taking the input: errors for ELU,
# silently wrong gradients for SELU). The tests compile into a cache of their own run.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="lossext-tests-inductor-"))

import pytest  # noqa: E402
import torch  # noqa: E402

import lossext  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
BACKENDS = ["extension", "reference"] if lossext.extension_loaded() else ["reference"]
# What computes a loss: the kernels with each gradient mode (lossext.losses.ops), or the reference (which has none).
IMPLEMENTATIONS = ([("extension", "fused"), ("extension", "recompute")] if lossext.extension_loaded() else []) + [
    ("reference", None)]


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    reason: str


# Against a float64 truth computed from the same (already rounded) inputs, keyed by (family, dtype);
# an op-info entry (lossext/testing) names its family. assert_close scales atol where a test says so.
TOLERANCES: Dict[Tuple[str, torch.dtype], Tolerance] = {
    ("loss", torch.float64): Tolerance(1e-10, 1e-12, "only the summation order differs from the reference (and "
                                                     "the reference's own exp/log)"),
    ("loss", torch.float32): Tolerance(2e-5, 2e-6, "fp32 accumulation over C terms and a vectorised exp with "
                                                   "~1e-7 relative error"),
    ("loss", torch.float16): Tolerance(2 * 2.0**-11, 1e-5, "the kernels compute in fp32, so the error is one "
                                                           "rounding of the result to 11 bits: half an ulp, 2^-11 "
                                                           "relative; twice that leaves room for the rounding of a "
                                                           "gradient that is then scaled by the upstream gradient"),
    ("loss", torch.bfloat16): Tolerance(2 * 2.0**-8, 1e-4, "as float16 with 8 bits: 2^-8 relative, twice that; "
                                                           "the absolute floor grows with the ulp too (1e-5 * 2^3)"),
    ("activation", torch.float64): Tolerance(1e-10, 1e-12, "libm (kernels) against ATen's double math and the "
                                                           "reference's torch ops: a few ulp"),
    ("activation", torch.float32): Tolerance(1e-5, 1e-6, "the kernels' vector exp/tanh/erfc are within ~2e-7 "
                                                         "relative (test_dense_grid_accuracy pins that), PyTorch's "
                                                         "own within ~1e-7 (its GELU erf: 1.5e-7 absolute), and a "
                                                         "softmax gradient adds ~sqrt(C) roundings: half the "
                                                         "losses' numbers, which sum C terms, cover all with margin"),
    ("activation", torch.float16): Tolerance(2 * 2.0**-11, 1e-5, "one rounding of an fp32 result to 11 significant "
                                                                 "bits; two fp32 values a few ulp apart can round to "
                                                                 "neighbours: 2 ulp of the dtype relative"),
    ("activation", torch.bfloat16): Tolerance(2 * 2.0**-8, 1e-5, "as float16 with 8 bits; the absolute floor stays "
                                                                 "float16's: one function per element, no sum of C "
                                                                 "terms near zero"),
}


def tolerance(dtype: torch.dtype, family: str = "loss") -> Tolerance:
    return TOLERANCES[(family, dtype)]


def output_rounding_atol(sensitivity: float, dtype: torch.dtype, grad_output: torch.Tensor) -> float:
    """The extra absolute tolerance of a gradient computed from a saved output (sigmoid, tanh, softmax, elu, selu).

    The output carries its own rounding, half an ulp: the derivative, a function of y, moves by
    |d(dy/dx)/dy| * ulp(y) / 2, at most `sensitivity * ulp(1) * max|g|` absolutely (sensitivity =
    max |d(dy/dx)/dy|, an op-info entry's output_sensitivity) - for PyTorch's own output-based backward
    of sigmoid, tanh and softmax as much as for ours. It matters where the derivative is small and
    cancels (y + alpha for ELU far left, 1 - y for sigmoid far right). Float64 needs none.
    """
    if not sensitivity or dtype == torch.float64 or grad_output.numel() == 0:
        return 0.0
    return sensitivity * torch.finfo(dtype).eps * grad_output.abs().max().item()


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once on the compiled kernels and once on the reference (or as parametrized, indirectly)."""
    lossext.set_backend(request.param)
    yield request.param
    lossext.set_backend(None)


@pytest.fixture(params=["fused", "recompute"])
def gradient_mode(request):
    lossext.set_gradient_mode(request.param)
    yield request.param
    lossext.set_gradient_mode(None)


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda i: "-".join(filter(None, i)))
def implementation(request):
    """The kernels in each gradient mode, then the reference."""
    backend, mode = request.param
    lossext.set_backend(backend)
    lossext.set_gradient_mode(mode)
    yield request.param
    lossext.set_backend(None)
    lossext.set_gradient_mode(None)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0, msg="",
                 family: str = "loss", extra_atol: float = 0.0):
    """Compare in float64 with the tolerance of (family, dtype); atol is scaled by `scale` (e.g. 1/N for a
    mean's gradient), then `extra_atol` added (output_rounding_atol)."""
    tol = tolerance(dtype, family)
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol.rtol, atol=tol.atol * scale + extra_atol,
                               equal_nan=True, msg=(lambda m: f"{msg}: {m}") if msg else None)
