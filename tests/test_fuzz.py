"""Property-based fuzzing (hypothesis) of every loss and activation against float64 references.

Each case draws an op and its parameters from the op-info tables (lossext.testing), a dtype, a shape (C = 1,
N = 0, K-dimensional inputs, and a few rows of C >= 200,000), a layout (contiguous, strided rows, a storage
offset, transposed, expanded), logits of a drawn scale with extreme values mixed in, targets of each index
dtype with ignored rows (all of them at times), class weights, a reduction, a gradient mode and an upstream
gradient; it runs the kernels and the float64 reference on the same rounded inputs and compares the value and
the gradient of the input (the leaf tensor the layout was made from).

The tolerance rule (check_loss_case, test_activations_match_the_float64_reference): |kernel - truth| <= rtol |truth|
+ atol elementwise, where

* rtol = (8 + 4 log2 C + 4 sqrt(C / L)) eps_acc + 2 eps_out: the float32 (float64 for float64) accumulation
  of C terms, each of L vector lanes (L = 8 for float32, 1 for float64, whose kernels are scalar) summing C / L
  of them in sequence (rounding errors independent in sign grow as the square root of that length; log2 C for
  the combination of the lanes), and one or two roundings to the output dtype (eps_out is the dtype's eps;
  two for a fused gradient that the upstream then scales). A probability target of a wider dtype promotes the
  computation (as F.cross_entropy): eps_acc is then the promoted dtype's, eps_out the input's for the gradient;
* atol scales with the row's conditioning: rtol times the size of what the row's result is computed from,
  S_r = s_r (1 + |o_t - m|) + sum_j |g_j| (1 + |o_j - m|), with s_r = |upstream w_t / W| the row's scale, m the
  row max (0 for the losses without softmax) and g the float64 gradient: an absolute error of eps in log S (the
  softmax normaliser's rounding, the s_r term) and a relative error of eps (1 + |o_j - m|) in each exp (its
  argument's rounding); for a gradient element, the same S_r plus its own |g_k| (1 + |o_k - m|), and the
  dtype's smallest normal times s_r (results below it are subnormal or flushed: the CPU exp flushes below
  e^-87);
* activations: atol = rtol (|x f'(x)| + |f(x)|) forward and rtol |g| (|f'(x)| + |x f''(x)|) backward (the
  change under a relative perturbation eps of x), plus an ulp of the saved output times the derivative's
  sensitivity to it where the output is saved (sigmoid, tanh, softmax), as in tests/test_activations.py, and
  float32's smallest normal times (1 + |x|) |g| (the CPU exp flushes below e^-87).

Profiles: LOSSEXT_FUZZ_PROFILE=ci (the default: a few hundred cases, seeded, for CI) or long (scripts/fuzz.sh:
10,000 loss cases and 5,000 activation cases, randomly seeded, printing a reproduction blob on failure).
"""

import math
import os
from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import lossext
from lossext.testing.activation_info import ACTIVATIONS
from lossext.testing.loss_info import LOSSES

requires_extension = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")

_COMMON = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("ci", max_examples=240, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=10_000, derandomize=False, **_COMMON)
PROFILE = os.environ.get("LOSSEXT_FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)
# The activations' share of a profile: half the losses' cases.
ACTIVATION_EXAMPLES = settings.get_profile(PROFILE).max_examples // 2

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
LOSS_BY_NAME = {loss.name: loss for loss in LOSSES}


def accumulation_eps(dtype: torch.dtype) -> float:
    return torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps


def rounding_eps(dtype: torch.dtype) -> float:
    """The relative size of a rounding to `dtype` of a result computed in its accumulation dtype."""
    return torch.finfo(dtype).eps if dtype in (torch.float16, torch.bfloat16) else accumulation_eps(dtype)


def summation_rtol(terms: int, dtype: torch.dtype) -> float:
    """The relative error of the kernels' sum of `terms` terms (the module docstring's rule)."""
    lanes = 1 if dtype == torch.float64 else 8
    return (8 + 4 * math.log2(terms + 1) + 4 * math.sqrt(terms / lanes)) * accumulation_eps(dtype)


# ---- Drawing a case. ----


@st.composite
def loss_params(draw, name: str):
    """The loss's float parameters over their whole valid range, with the table's values among them."""
    table = LOSS_BY_NAME[name].param_sets
    if draw(st.booleans()):
        return dict(draw(st.sampled_from(table)))
    if name == "cross_entropy":
        cap = draw(st.none() | st.sampled_from([1.0, 30.0]) | st.floats(0.05, 100.0))
        return dict(label_smoothing=draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)), logit_softcap=cap)
    if name == "hinge":
        return dict(p=draw(st.sampled_from([1.0, 2.0, 3.0]) | st.floats(1.0, 4.0)), margin=draw(st.floats(0.0, 2.0)))
    if name == "alpha_loss":
        return dict(alpha=draw(st.sampled_from([0.5, 1.0, 2.0, math.inf]) | st.floats(0.3, 6.0)))
    if name == "two_scale_cross_entropy":
        return dict(eta=draw(st.floats(-2.0, 2.0)))
    return {}


@st.composite
def logits(draw, shape, dtype):
    """Normal logits times a drawn scale, with extreme values (large for the dtype, +-inf never: the references
    and F.cross_entropy disagree among themselves there) in a few places."""
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    largest = {torch.float16: 3e4, torch.bfloat16: 1e30, torch.float32: 1e30, torch.float64: 1e100}[dtype]
    scale = draw(st.sampled_from([1e-3, 0.3, 1.0, 3.0, 10.0, 100.0]))
    x = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    if x.numel() and draw(st.integers(0, 4)) == 0:
        extreme = draw(st.sampled_from([60.0, 100.0, 1e4, largest]))
        count = draw(st.integers(1, min(3, x.numel())))
        where = torch.randint(0, x.numel(), (count,), generator=generator)
        x.view(-1)[where] = extreme * torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0).double()
    return x.clamp(-largest, largest).to(dtype)


@dataclass
class Layout:
    """How the (N, C) or (N, C, d) input is laid out: made from a leaf tensor (the one that takes the gradient)."""

    name: str
    make_leaf: Callable[[torch.Tensor], torch.Tensor]  # the logits -> the leaf holding them
    view: Callable[[torch.Tensor], torch.Tensor]  # the leaf -> the input


def layout_of(name: str, shape, offset: int, pad: int) -> Layout:
    if name == "row_strided":  # rows further apart than C
        return Layout(name, lambda x: torch.cat([x, torch.zeros(x.shape[:1] + (pad,) + x.shape[2:], dtype=x.dtype)],
                                                dim=1).contiguous(),
                      lambda leaf: leaf.narrow(1, 0, shape[1]))
    if name == "offset":  # a storage offset, from a flat leaf
        return Layout(name, lambda x: torch.cat([torch.zeros(offset, dtype=x.dtype), x.reshape(-1)]),
                      lambda leaf: leaf.narrow(0, offset, math.prod(shape)).view(shape))
    if name == "transposed":  # the class dimension not dense: the kernels copy
        return Layout(name, lambda x: x.transpose(0, 1).contiguous(), lambda leaf: leaf.transpose(0, 1))
    if name == "expanded":  # one row, expanded over N (stride 0)
        return Layout(name, lambda x: x[:1].clone(), lambda leaf: leaf.expand(shape))
    return Layout("contiguous", lambda x: x.clone(), lambda leaf: leaf)


@dataclass
class LossCase:
    name: str
    params: dict
    dtype: torch.dtype
    shape: tuple
    layout: Layout
    x: torch.Tensor
    target: torch.Tensor
    probabilities: bool
    weight: Optional[torch.Tensor]
    ignore_index: int
    reduction: str
    mode: str
    upstream: torch.Tensor

    def __repr__(self) -> str:
        return (f"LossCase({self.name}, {self.params}, {self.dtype}, shape={self.shape}, layout={self.layout.name}, "
                f"probabilities={self.probabilities}, weight={self.weight is not None}, "
                f"ignore_index={self.ignore_index}, ignored={int((self.target == self.ignore_index).sum())}, "
                f"reduction={self.reduction}, mode={self.mode}, target dtype={self.target.dtype})")


@st.composite
def loss_cases(draw):
    entry = draw(st.sampled_from(LOSSES))
    params = draw(loss_params(entry.name))
    dtype = draw(st.sampled_from(DTYPES))
    rows = draw(st.sampled_from([0, 1, 2, 3]) | st.integers(0, 40))
    if draw(st.integers(0, 39)) == 0:  # one draw in 40: a language model's vocabulary, a row or two
        classes, rows = draw(st.integers(200_000, 200_050)), draw(st.integers(1, 2))
    else:
        classes = draw(st.sampled_from([1, 2, 3]) | st.integers(1, 70))
    spatial = draw(st.sampled_from([(), (), (), (1,), (3,)]))
    shape = (rows, classes) + spatial
    layout_name = draw(st.sampled_from(["contiguous", "row_strided", "offset", "transposed", "expanded"]))
    if spatial and layout_name in ("transposed",):
        layout_name = "contiguous"
    if layout_name == "expanded" and rows == 0:
        layout_name = "contiguous"
    layout = layout_of(layout_name, shape, offset=draw(st.integers(1, 17)), pad=draw(st.integers(1, 9)))
    x = draw(logits(shape, dtype))
    if layout_name == "expanded":
        x = x[:1].expand(shape).clone()

    probabilities = entry.supports_probabilities and draw(st.integers(0, 3)) == 0
    target_shape = (rows,) + spatial
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if probabilities:
        target = torch.rand(shape, generator=generator, dtype=torch.float64).to(
            draw(st.sampled_from([dtype, torch.float32, torch.float64])))
        ignore_index = -100
    else:
        target_dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.uint8]))
        if target_dtype == torch.uint8 and classes > 255:
            target_dtype = torch.int64
        ignore_index = draw(st.sampled_from([-100, 0, classes - 1]))
        if target_dtype == torch.uint8 and ignore_index < 0:
            ignore_index = draw(st.sampled_from([0, classes - 1]))
        target = torch.randint(0, classes, target_shape, generator=generator)
        ignored = draw(st.sampled_from(["none", "some", "all"]))
        if ignored != "none" and target.numel():
            mask = torch.ones(target_shape, dtype=torch.bool) if ignored == "all" else (
                torch.rand(target_shape, generator=generator) < 0.3)
            target[mask] = ignore_index
        target = target.to(target_dtype)
        if entry.margin_threshold is not None:
            x = entry.away_from_discontinuity(x, target, params, ignore_index)
            if layout_name == "expanded" and rows > 1 and not torch.equal(x, x[:1].expand(shape)):
                layout_name, layout = "contiguous", layout_of("contiguous", shape, 0, 0)
    weight = None
    if draw(st.booleans()):
        weight = (torch.rand(classes, generator=generator, dtype=torch.float64) * 2 + 0.05).to(dtype)
    reduction = draw(st.sampled_from(["none", "mean", "sum"]))
    mode = draw(st.sampled_from(["fused", "recompute"]))
    if reduction == "none":
        upstream = torch.randn(target_shape, generator=generator, dtype=torch.float64)
    else:
        # 32768: a loss scale float16 holds (65536 is inf there).
        upstream = torch.tensor(draw(st.sampled_from([1.0, 0.37, -2.5, 1e-3, 32768.0])), dtype=torch.float64)
    # The kernels get the upstream in the loss's dtype: the truth gets the same rounded values.
    upstream = upstream.to(dtype).double()
    return LossCase(entry.name, params, dtype, shape, layout, x, target, probabilities, weight, ignore_index,
                    reduction, mode, upstream)


# ---- Running a case. ----


def two_scale_args(params: dict) -> dict:
    """r1, r2 and norm from the table (the kernel takes them as tensors; floats here)."""
    scales = LOSS_BY_NAME["two_scale_cross_entropy"].tensor_params
    return dict(r1=scales["r1"], r2=scales["r2"], norm=scales["norm"], **params)


def run_loss(fn, case: LossCase, x: torch.Tensor, weight: Optional[torch.Tensor], reduction: str):
    params = two_scale_args(case.params) if case.name == "two_scale_cross_entropy" else case.params
    return fn(x, case.target, **params, weight=weight, ignore_index=case.ignore_index, reduction=reduction)


def value_and_gradient(fn, case: LossCase, leaf: torch.Tensor, weight, upstream, input_gradient: bool = False):
    """The loss and the gradient of its leaf (and, with input_gradient, of the (N, C, ...) input made from it)."""
    leaf = leaf.detach().clone().requires_grad_()
    x = case.layout.view(leaf)
    value = run_loss(fn, case, x, weight, case.reduction)
    wanted = (leaf, x) if input_gradient else (leaf,)
    grads = torch.autograd.grad(value, wanted, upstream.to(value.dtype), allow_unused=True)
    grads = tuple(torch.zeros_like(t) if g is None else g for t, g in zip(wanted, grads))
    return (value.detach(),) + grads


def shifted_logits(case: LossCase, x64: torch.Tensor) -> torch.Tensor:
    """|o_j - m| per element, m the row max (0 for the losses without softmax: the sums of per-class terms of the
    op-info table, hinge, L1, L2 and logistic); non-finite logits count 0."""
    if LOSS_BY_NAME[case.name].sums_class_terms:
        return x64.abs()
    finite = x64.masked_fill(~torch.isfinite(x64), 0.0)
    return (finite - finite.amax(dim=1, keepdim=True)).abs()


def row_scales(case: LossCase, x64: torch.Tensor, weight64):
    """(s_r / |upstream_r|, |o_t - m|, 1/W): each row's weight in the output, w_t (the total target mass for
    probabilities) over the mean's denominator W (1 for none and sum); |o_t - m| (max_j |o_j - m| for
    probabilities)."""
    shifted = shifted_logits(case, x64)
    classes = x64.shape[1]
    w = torch.ones(classes, dtype=torch.float64) if weight64 is None else weight64
    w = w.reshape((1, classes) + (1,) * (x64.dim() - 2))
    if case.probabilities:
        target_weight = (case.target.double() * w).abs().sum(dim=1)
        target_shift = shifted.amax(dim=1) if classes else torch.zeros(target_weight.shape, dtype=torch.float64)
        denominator = float(target_weight.numel())
    else:
        t = case.target.long()
        valid = t != case.ignore_index
        safe = torch.where(valid, t, torch.zeros_like(t))
        target_weight = torch.where(valid, w.expand(x64.shape).gather(1, safe.unsqueeze(1)).squeeze(1), 0.0)
        target_shift = torch.where(valid, shifted.gather(1, safe.unsqueeze(1)).squeeze(1), 0.0)
        denominator = float(target_weight.sum())
    factor = (1.0 / denominator if denominator else 0.0) if case.reduction == "mean" else 1.0
    return target_weight * factor, target_shift, factor


def within(actual: torch.Tensor, truth: torch.Tensor, rtol: float, atol: torch.Tensor, dtype: torch.dtype):
    """Elementwise |actual - truth| <= rtol |truth| + atol, NaN where the truth is NaN, and where the truth is
    beyond the dtype's range (an overflow of the result itself) inf of its sign or a value within the rule."""
    actual, truth = actual.double(), truth.double()
    ok = (actual - truth).abs() <= rtol * truth.abs() + atol
    overflow = truth.abs() > torch.finfo(dtype).max * (1 - 4 * rtol)
    ok |= overflow & (actual == truth.sign() * math.inf)
    ok |= torch.isinf(truth) & (actual == truth)
    ok |= torch.isnan(truth) & torch.isnan(actual)
    return ok


def check_loss_case(case: LossCase):
    note(repr(case))
    reference = getattr(lossext.reference, case.name)
    lossext.set_gradient_mode(case.mode)
    try:
        leaf = case.layout.make_leaf(case.x)
        value, grad = value_and_gradient(getattr(lossext, case.name), case, leaf, case.weight, case.upstream)
    finally:
        lossext.set_gradient_mode(None)
    weight64 = None if case.weight is None else case.weight.double()
    value_truth, grad_truth, input_grad_truth = value_and_gradient(reference, case, leaf.double(), weight64,
                                                                   case.upstream, input_gradient=True)
    out_dtype = torch.promote_types(case.dtype, case.target.dtype) if case.probabilities else case.dtype
    assert value.dtype == out_dtype and value.shape == value_truth.shape and grad.shape == leaf.shape

    # The rule's quantities, from the float64 truth on the (N, C, ...) input: each row's value and the gradient
    # of the output without the upstream (G = the truth's input gradient over the upstream).
    x64 = case.layout.view(leaf.double()).detach()
    with torch.no_grad():
        rows = run_loss(reference, case, x64, weight64, "none")
    upstream_rows = case.upstream.unsqueeze(1) if case.reduction == "none" else case.upstream
    gradient = (input_grad_truth / upstream_rows).nan_to_num(nan=0.0)
    target_weight, target_shift, row_factor = row_scales(case, x64, weight64)

    rtol = summation_rtol(case.shape[1], out_dtype) + 2 * rounding_eps(out_dtype)
    grad_rtol = summation_rtol(case.shape[1], out_dtype) + 2 * rounding_eps(case.dtype)
    weighted = gradient.abs() * (1 + shifted_logits(case, x64))
    conditioning = target_weight * (1 + target_shift) + weighted.sum(dim=1)
    conditioning = conditioning.nan_to_num(nan=0.0, posinf=math.inf)
    # Each row's error; for a reduction, their sum and the sum's own rounding of the rows' values.
    value_atol = rtol * conditioning if case.reduction == "none" else rtol * (
        conditioning.sum() + row_factor * rows.abs().sum())
    assert within(value, value_truth, rtol, value_atol, out_dtype).all(), (
        f"value {value.flatten()[:6].tolist()} vs {value_truth.flatten()[:6].tolist()} (atol {value_atol})")

    # The gradient: per row the upstream's size times the above.
    upstream = case.upstream.abs()
    per_row = upstream.unsqueeze(1) if case.reduction == "none" else upstream
    element_atol = grad_rtol * (per_row * (conditioning.unsqueeze(1) + weighted)) + 2 * torch.finfo(case.dtype).tiny * (
        1 + per_row * target_weight.unsqueeze(1))
    # On the leaf: the input's bound, summed over the elements an expanded leaf maps onto one.
    if case.layout.name == "expanded":
        leaf_atol = element_atol.expand(case.shape).sum(dim=0, keepdim=True)
    elif case.layout.name == "offset":
        leaf_atol = torch.cat([torch.zeros(leaf.numel() - math.prod(case.shape), dtype=torch.float64),
                               element_atol.expand(case.shape).reshape(-1)])
    else:
        leaf_atol = case.layout.make_leaf(element_atol.expand(case.shape).contiguous())
    ok = within(grad, grad_truth, grad_rtol, leaf_atol, case.dtype)
    assert ok.all(), (f"gradient: {int((~ok).sum())} of {ok.numel()} off: {grad.double()[~ok][:4].tolist()} vs "
                      f"{grad_truth[~ok][:4].tolist()}, allowed {leaf_atol[~ok][:4].tolist()}")


@requires_extension
@given(case=loss_cases())
def test_losses_match_the_float64_reference(case):
    check_loss_case(case)


# ---- Activations. ----


@st.composite
def activation_cases(draw):
    entry = draw(st.sampled_from(ACTIVATIONS))
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from([(0,), (1,), (7,), (3, 5), (2, 6, 4), (4, 33), (2, 3, 5, 7), (1000,)]))
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided", "offset"]))
    x = draw(logits(shape, dtype)).clamp(-1e4, 1e4) if dtype != torch.float16 else draw(logits(shape, dtype))
    parameter = None
    if entry.kind == "channel":
        channels = shape[1] if len(shape) >= 2 else 1
        count = draw(st.sampled_from([1, channels]))
        parameter = (torch.rand(count, dtype=torch.float64) * 3 - 1).to(dtype)
    dim = draw(st.integers(-len(shape), len(shape) - 1)) if entry.kind == "softmax" else None
    seed = draw(st.integers(0, 2**31 - 1))
    return entry, dtype, x, layout, parameter, dim, seed


def laid_out(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "transposed" and x.dim() >= 2:
        return x.transpose(0, -1).contiguous().transpose(0, -1)
    if layout == "strided" and x.dim() >= 1:
        wide = torch.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    if layout == "offset":
        flat = torch.zeros(x.numel() + 5, dtype=x.dtype)
        flat[5:] = x.reshape(-1)
        return flat[5:].view(x.shape)
    return x.clone()


@requires_extension
@settings(max_examples=ACTIVATION_EXAMPLES)
@given(case=activation_cases())
def test_activations_match_the_float64_reference(case):
    entry, dtype, x, layout, parameter, dim, seed = case
    note(f"{entry.name} {dtype} shape={tuple(x.shape)} layout={layout} parameter={parameter} dim={dim}")
    extra = {} if dim is None else dict(dim=dim)
    args = () if parameter is None else (parameter,)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    x_in = laid_out(x, layout).requires_grad_()
    y = entry.function(x_in, *args, **extra)
    (grad,) = torch.autograd.grad(y, x_in, g.to(dtype))

    x64 = x.double().requires_grad_()
    args64 = tuple(a.double() for a in args)
    # The truth: lossext.reference in float64 (written from the formulas, accurate where F's float64 is not:
    # F.gelu's 1 + erf(x / sqrt 2) is 0 below x = -8, where x Phi(x) is 1e-16 and less).
    truth = entry.reference
    y64 = truth(x64, *args64, **extra)
    (grad64,) = torch.autograd.grad(y64, x64, g, create_graph=True)
    # f'(x) and x f''(x) elementwise (the diagonal of the Hessian for elementwise ops; for softmax and the channel
    # ops a row of it, which the per-element rule still bounds: |g| |f'| plus the first-order change of grad).
    ones = torch.ones_like(x64)
    (slope,) = torch.autograd.grad(truth(x64, *args64, **extra), x64, ones, create_graph=True)
    curvature = torch.autograd.grad(slope.sum(), x64, allow_unused=True)[0] if slope.requires_grad else None
    curvature = torch.zeros_like(x64) if curvature is None else curvature
    # Where the reference's second derivative is 0 * inf (exp overflows in a factor that is 0, silu at x = 1e4) it
    # is taken as 0: the rule then asks for the first-order bound alone.
    slope, curvature = slope.detach().nan_to_num(nan=0.0), curvature.detach().nan_to_num(nan=0.0)

    size = 1 if x.dim() == 0 else (x.shape[dim] if dim is not None else 1)
    rtol = 2 * summation_rtol(size, dtype) + 2 * rounding_eps(dtype)
    xd = x64.detach()
    # The CPU exp flushes results below e^-87 (about float32's smallest normal) to 0: a term that small, times its
    # factors (x, and g backward), may be lost.
    flushed = 2 * torch.finfo(dtype if dtype == torch.float64 else torch.float32).tiny * (1 + xd.abs())
    y_atol = rtol * (xd.abs() * slope.abs() + y64.detach().abs()) + flushed + torch.finfo(dtype).tiny
    # The saved output's rounding (conftest.output_rounding_atol), float64's too: 1 - y^2 of tanh cancels there.
    output_rounding = entry.output_sensitivity * torch.finfo(dtype).eps * g.abs()
    g_atol = (rtol * g.abs() * (slope.abs() + (xd * curvature).abs()) + output_rounding + flushed * g.abs()
              + torch.finfo(dtype).tiny)
    if entry.kind == "softmax":  # a gradient of C terms: <g, y> enters every element
        g_atol = g_atol + rtol * (g.abs() * y64.detach()).sum(dim=dim, keepdim=True) * y64.detach()

    y_error, g_error = (y.double() - y64.detach()).abs(), (grad.double() - grad64.detach()).abs()
    finite_y, finite_g = torch.isfinite(y64.detach()), torch.isfinite(grad64.detach())
    assert (y_error <= rtol * y64.detach().abs() + y_atol)[finite_y].all(), (
        f"forward: worst {y_error[finite_y].max() if finite_y.any() else None}")
    assert (g_error <= rtol * grad64.detach().abs() + g_atol)[finite_g].all(), (
        f"backward: worst at {xd[finite_g & (g_error > rtol * grad64.detach().abs() + g_atol)][:5].tolist()}")
    assert torch.equal(y.double()[~finite_y].nan_to_num(), y64.detach()[~finite_y].nan_to_num())
