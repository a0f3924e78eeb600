"""Checks shared by every loss's tests: value and gradient against a float64 ground truth."""

from typing import Callable

import torch

from conftest import assert_close


def value_and_grad(fn: Callable, input: torch.Tensor, *args, upstream_seed: int = 1,
                   upstream_dtype: torch.dtype = None, **kwargs):
    """fn's output and d(sum(output * u))/d(input) for a fixed random upstream u (exercises scaling).

    u is rounded to `upstream_dtype` (default: the input's dtype) so a float64 ground truth can use
    exactly the upstream values the low-precision run saw.
    """
    x = input.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    generator = torch.Generator().manual_seed(upstream_seed)
    upstream = (torch.rand(out.shape, generator=generator, dtype=torch.float64) + 0.5)
    upstream = upstream.to(upstream_dtype or input.dtype).to(out.dtype).to(out.device)
    (grad,) = torch.autograd.grad(out, x, upstream)
    return out.detach(), grad


def check_matches_float64(fn: Callable, ground_truth: Callable, input: torch.Tensor, *args, **kwargs):
    """fn in input's dtype against ground_truth run in float64 on the same (already rounded) values.

    The gradient's absolute tolerance is scaled by its largest magnitude, since a
    mean's gradient is 1/N times a row's.
    """
    out, grad = value_and_grad(fn, input, *args, **kwargs)
    ref_out, ref_grad = value_and_grad(ground_truth, input.double(), *args, upstream_dtype=input.dtype, **kwargs)
    assert out.dtype == input.dtype, f"output dtype {out.dtype}, expected {input.dtype}"
    assert grad.dtype == input.dtype and grad.shape == input.shape
    assert out.shape == ref_out.shape, f"output shape {tuple(out.shape)}, expected {tuple(ref_out.shape)}"
    assert_close(out, ref_out, input.dtype, scale=max(1.0, ref_out.abs().max().item()) if ref_out.numel() else 1.0,
                 msg="value")
    grad_scale = ref_grad.abs().max().item() if ref_grad.numel() else 1.0
    assert_close(grad, ref_grad, input.dtype, scale=grad_scale, msg="gradient")
    return out, grad
