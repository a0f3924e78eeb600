"""Checks and case builders shared by every loss's tests: value and gradients against a float64 ground truth."""

from typing import Callable, Dict, Mapping, Optional, Sequence

import pytest
import torch

from conftest import BACKENDS, assert_close
from lossext.testing.loss_info import LOSSES, LossInfo, make_case  # noqa: F401  (make_case: for the loss files)

REDUCTIONS = ["mean", "sum", "none"]


def case_id(op: LossInfo, params: Mapping) -> str:
    return op.name + "".join(f"-{key}={value}" for key, value in params.items())


# Every loss with every parameter set (all of a loss's float parameters, in the order its op takes
# them), and every loss with its first parameter set.
CASES = [pytest.param(op, params, id=case_id(op, params)) for op in LOSSES for params in op.param_sets]
FIRST_CASES = [pytest.param(op, op.param_sets[0], id=case_id(op, op.param_sets[0])) for op in LOSSES]


def cases_with_backends(cases: Sequence) -> list:
    """(backend, op, params) for the kernels, and for the reference where PyTorch's op is an independent
    truth (elsewhere the reference is the truth and would be checked against itself); parametrize
    with indirect=["backend"], so that the backend fixture selects it."""
    return [pytest.param(backend, *case.values, id=f"{backend}-{case.id}")
            for case in cases for backend in BACKENDS if backend == "extension" or case.values[0].native is not None]


def tensor_param_dtype(dtype: torch.dtype) -> torch.dtype:
    """The learnable scalars' dtype: float32 (a float32 model's parameters), float64 for float64 logits."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tensor_params(op: LossInfo, dtype: torch.dtype, device) -> Dict[str, torch.Tensor]:
    """op's learnable scalars as tensors that take gradients."""
    return {name: torch.tensor(value, dtype=tensor_param_dtype(dtype), device=device, requires_grad=True)
            for name, value in op.tensor_params.items()}


def loss(op: LossInfo, params: Mapping, fn: Optional[Callable] = None) -> Callable:
    """fn (default op.function) with the parameters bound; tensor parameters are floats unless passed."""
    fn = fn or op.function
    return lambda input, target, **kwargs: fn(input, target, **{**params, **op.tensor_params, **kwargs})


def ground_truth(op: LossInfo, params: Mapping) -> Callable:
    """op's ground truth with the parameters bound, tensors (soft targets, weights, scales) in float64."""

    def truth(input, target, **kwargs):
        target = target.double() if target.is_floating_point() else target
        return loss(op, params, op.ground_truth)(input, target, **float64_kwargs(kwargs))

    return truth


def value_and_grads(fn: Callable, input: torch.Tensor, *args, upstream_seed: int = 1,
                    upstream_dtype: torch.dtype = None, tensors: Mapping[str, torch.Tensor] = None, **kwargs):
    """fn's output, d(sum(output * u))/d(input) for a fixed random upstream u (exercises scaling), and the
    same gradient of every keyword tensor in `tensors` (fresh copies of them take the gradients).

    u is rounded to `upstream_dtype` (default: the input's dtype) so a float64 ground truth can use
    exactly the upstream values the low-precision run saw.
    """
    x = input.detach().clone().requires_grad_(True)
    tensors = {name: t.detach().clone().requires_grad_(True) for name, t in (tensors or {}).items()}
    out = fn(x, *args, **tensors, **kwargs)
    generator = torch.Generator().manual_seed(upstream_seed)
    upstream = (torch.rand(out.shape, generator=generator, dtype=torch.float64) + 0.5)
    upstream = upstream.to(upstream_dtype or input.dtype).to(out.dtype).to(out.device)
    grad, *tensor_grads = torch.autograd.grad(out, [x, *tensors.values()], upstream)
    return out.detach(), grad, dict(zip(tensors, tensor_grads))


def value_and_grad(fn: Callable, input: torch.Tensor, *args, **kwargs):
    """value_and_grads without tensor keywords: fn's output and its input's gradient."""
    out, grad, _ = value_and_grads(fn, input, *args, **kwargs)
    return out, grad


def check_matches_float64(fn: Callable, ground_truth: Callable, input: torch.Tensor, *args,
                          tensor_params: Mapping[str, torch.Tensor] = None, family: str = "loss", context: str = "",
                          **kwargs):
    """fn in input's dtype against ground_truth run in float64 on the same (already rounded) values,
    to the tolerance of (family, dtype); `context` starts the failure messages.

    The gradient's absolute tolerance is scaled by its largest magnitude, since a mean's gradient
    is 1/N times a row's. `tensor_params` (learnable scalars) take gradients too: in their own dtype,
    summed over rows in fp32 (fp64) for every input dtype - the logits were rounded identically for
    both sides, so only the kernel's accumulation differs and their dtype sets the tolerance,
    relative to the largest of their gradients.
    """
    tensor_params = tensor_params or {}
    out, grad, param_grads = value_and_grads(fn, input, *args, tensors=tensor_params, **kwargs)
    ref_out, ref_grad, ref_param_grads = value_and_grads(
        ground_truth, input.double(), *args, upstream_dtype=input.dtype,
        tensors={name: t.double() for name, t in tensor_params.items()}, **kwargs)
    assert out.dtype == input.dtype, f"{context}output dtype {out.dtype}, expected {input.dtype}"
    assert grad.dtype == input.dtype and grad.shape == input.shape, context
    assert out.shape == ref_out.shape, f"{context}output shape {tuple(out.shape)}, expected {tuple(ref_out.shape)}"
    assert_close(out, ref_out, input.dtype, scale=max(1.0, ref_out.abs().max().item()) if ref_out.numel() else 1.0,
                 msg=f"{context}value", family=family)
    grad_scale = ref_grad.abs().max().item() if ref_grad.numel() else 1.0
    assert_close(grad, ref_grad, input.dtype, scale=grad_scale, msg=f"{context}gradient", family=family)
    if tensor_params:
        param_scale = max(g.abs().item() for g in ref_param_grads.values())
        for name, got in param_grads.items():
            assert got.dtype == tensor_params[name].dtype, f"{context}{name}'s gradient is {got.dtype}"
            assert_close(got, ref_param_grads[name], got.dtype, scale=param_scale, msg=f"{context}{name}'s gradient",
                         family=family)
    return out, grad


def resolve(options, num_classes, device, dtype):
    """Loss keyword arguments from test options: weight=True becomes a random positive (C,) weight."""
    kwargs = dict(options)
    if kwargs.pop("weight", False):
        kwargs["weight"] = (torch.rand(num_classes, dtype=torch.float64) + 0.1).to(dtype).to(device)
    return kwargs


def float64_kwargs(kwargs):
    """The keyword arguments with tensors (weights, scales) in float64, for a float64 ground truth."""
    return {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}


LAYOUTS = {
    "transposed": lambda base: base.t(),  # class stride 30
    "row_slice": lambda base: base[::3],  # row stride 90
    "column_slice": lambda base: base[:, 1:25:2],  # class stride 2
    "expanded": lambda base: base[:1].expand(12, 30),  # row stride 0
}
