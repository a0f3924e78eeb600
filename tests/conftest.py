"""Shared fixtures: devices, backends, gradient modes and per-dtype tolerances."""

import pytest
import torch

import lossext

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
BACKENDS = ["extension", "reference"] if lossext.extension_loaded() else ["reference"]

# Tolerances against a float64 ground truth computed from the same (already rounded) inputs.
# float64: only the summation order differs from the reference (and the reference's own exp/log).
# float32: fp32 accumulation over C terms and a vectorised exp with ~1e-7 relative error.
# float16/bfloat16: the kernels compute in fp32, so the error is one rounding of the result to the
#   storage dtype: half an ulp, 2^-11 (fp16) or 2^-8 (bf16) relative; twice that leaves room for
#   the rounding of a gradient that is then scaled by the upstream gradient.
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=2e-5, atol=2e-6),
    torch.float16: dict(rtol=2 * 2.0**-11, atol=1e-5),
    torch.bfloat16: dict(rtol=2 * 2.0**-8, atol=1e-4),
}


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once on the compiled kernels and once on the reference."""
    lossext.set_backend(request.param)
    yield request.param
    lossext.set_backend(None)


@pytest.fixture(params=["fused", "recompute"])
def gradient_mode(request):
    lossext.set_gradient_mode(request.param)
    yield request.param
    lossext.set_gradient_mode(None)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0, msg=""):
    """Compare in float64 with the tolerance of `dtype`; atol is scaled by `scale` (e.g. 1/N for a mean's gradient)."""
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol["rtol"], atol=tol["atol"] * scale,
                               equal_nan=True, msg=(lambda m: f"{msg}: {m}") if msg else None)
