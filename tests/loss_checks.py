"""Checks and case builders shared by every loss's tests: value and gradient against a float64 ground truth."""

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


REDUCTIONS = ["mean", "sum", "none"]


def make_case(shape, num_classes, device, dtype, ignore_fraction=0.25, target_dtype=torch.int64,
              ignore_index=-100):
    """Logits of `shape` (class dim 1, or 0 for 1-D) and targets with some rows set to ignore_index."""
    input = (torch.randn(shape, dtype=torch.float64) * 3).to(dtype).to(device)
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = torch.randint(0, num_classes, target_shape)
    if ignore_fraction and target.dim() > 0:
        target[torch.rand(target_shape) < ignore_fraction] = ignore_index
    if target_dtype == torch.uint8:
        target = target.clamp(min=0)
    return input, target.to(target_dtype).to(device)


def resolve(options, num_classes, device, dtype):
    """Loss keyword arguments from test options: weight=True becomes a random positive (C,) weight."""
    kwargs = dict(options)
    if kwargs.pop("weight", False):
        kwargs["weight"] = (torch.rand(num_classes, dtype=torch.float64) + 0.1).to(dtype).to(device)
    return kwargs


def float64_kwargs(kwargs):
    """The keyword arguments with tensors (weights) in float64, for a float64 ground truth."""
    return {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}


LAYOUTS = {
    "transposed": lambda base: base.t(),  # class stride 30
    "row_slice": lambda base: base[::3],  # row stride 90
    "column_slice": lambda base: base[:, 1:25:2],  # class stride 2
    "expanded": lambda base: base[:1].expand(12, 30),  # row stride 0
}
