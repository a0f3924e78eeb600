"""The Janocha & Czarnecki (2017) losses and the alpha-loss, table-driven against lossext.reference.

One LossSpec per loss names its function, module and parameter sets; every test runs over the
table. The ground truth is the reference evaluated in float64 on the same (already rounded)
inputs, except where a test says otherwise.
"""

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import pytest
import torch
import torch.nn.functional as F

import lossext
from conftest import DTYPES, assert_close
from loss_checks import (LAYOUTS, REDUCTIONS, check_matches_float64, float64_kwargs, make_case, resolve,
                         value_and_grad)

requires_extension = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")


@dataclass(frozen=True)
class LossSpec:
    name: str
    module: str  # the lossext.nn class
    function_class: str  # the lossext.autograd class
    param_sets: Tuple[dict, ...] = ({},)
    # (o_j for j != t, o_t) where the loss has a kink, for the losses that have one; gradcheck stays away.
    kinks: Optional[Callable[[dict], Tuple[float, float]]] = None

    @property
    def function(self):
        return getattr(lossext, self.name)

    @property
    def reference(self):
        return getattr(lossext.reference, self.name)


SPECS = [
    LossSpec("hinge", "HingeLoss", "HingeFunction",
             (dict(p=1.0, margin=0.5), dict(p=2.0, margin=0.5), dict(p=3.0, margin=1.0), dict(p=1.5, margin=0.25)),
             kinks=lambda params: (-params["margin"], params["margin"])),
    LossSpec("l1", "L1Loss", "L1Function", kinks=lambda params: (0.0, 1.0)),
    LossSpec("l2", "L2Loss", "L2Function"),
    LossSpec("expectation", "ExpectationLoss", "ExpectationFunction"),
    LossSpec("regularized_expectation", "RegularizedExpectationLoss", "RegularizedExpectationFunction"),
    LossSpec("chebyshev", "ChebyshevLoss", "ChebyshevFunction"),
    LossSpec("squared_log", "SquaredLogLoss", "SquaredLogFunction"),
    LossSpec("tanimoto", "TanimotoLoss", "TanimotoFunction"),
    LossSpec("cauchy_schwarz", "CauchySchwarzLoss", "CauchySchwarzFunction"),
    LossSpec("alpha_loss", "AlphaLoss", "AlphaLossFunction", (dict(alpha=1.0), dict(alpha=2.0), dict(alpha=0.8), dict(alpha=math.inf))),
]
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


def case_id(spec, params):
    return spec.name + "".join(f"-{key}={value}" for key, value in params.items())


# Every loss with every parameter set (all of a loss's parameters, in the order its op takes them),
# and every loss with its first parameter set.
CASES = [pytest.param(spec, params, id=case_id(spec, params)) for spec in SPECS for params in spec.param_sets]
FIRST_CASES = [pytest.param(spec, spec.param_sets[0], id=case_id(spec, spec.param_sets[0])) for spec in SPECS]
CLASS_SUM_CASES = [case for case in CASES if case.values[0].name in ("hinge", "l1", "l2")]


def loss(spec, params):
    return lambda input, target, **kwargs: spec.function(input, target, **params, **kwargs)


def ground_truth(spec, params):
    return lambda input, target, **kwargs: spec.reference(input, target, **params, **float64_kwargs(kwargs))


def kink_free_input(spec, params, target, shape, device):
    """float64 logits at least 0.1 away from the loss's kinks, so finite differences see one smooth piece."""
    x = torch.randn(shape, dtype=torch.float64) * 2
    if spec.kinks is not None:
        other_kink, target_kink = spec.kinks(params)
        kink = torch.full(shape, other_kink, dtype=torch.float64)
        rows = torch.nonzero(target >= 0)[:, 0]
        kink[rows, target[rows]] = target_kink
        distance = x - kink
        x = kink + torch.where(distance >= 0, 1.0, -1.0) * (distance.abs() + 0.1)
    return x.to(device)


# ---- Values and gradients against the reference. ----


@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference(backend, device, spec, params, dtype, reduction):
    input, target = make_case((16, 37), 37, device, dtype)
    kwargs = resolve(dict(weight=True), 37, device, dtype)
    check_matches_float64(loss(spec, params), ground_truth(spec, params), input, target, reduction=reduction, **kwargs)


@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("shape", [(37,), (4, 37, 3, 5)], ids=str)
@pytest.mark.parametrize("options", [dict(), dict(weight=True), dict(ignore_index=2)],
                         ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_shapes_and_options(backend, device, spec, params, shape, options, reduction):
    num_classes = shape[0] if len(shape) == 1 else shape[1]
    input, target = make_case(shape, num_classes, device, torch.float32, ignore_index=options.get("ignore_index", -100))
    kwargs = resolve(options, num_classes, device, torch.float32)
    check_matches_float64(loss(spec, params), ground_truth(spec, params), input, target, reduction=reduction, **kwargs)


@requires_extension
@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_very_many_classes(spec, params, dtype):
    # Long rows: the kernel's vector loops, scalar tail (20_003 = 8 * 2500 + 3) and multi-task rows.
    # The kernel only: with p_t ~ 1e-7 the float32 reference's autograd loses these rows' small
    # gradients to rounding (expectation's sum_j sgn(y_j - p_j) p_j cancels against 1), while the
    # kernel's closed forms (2 p_t p_k) do not.
    input, target = make_case((3, 20_003), 20_003, "cpu", dtype, ignore_fraction=0)
    check_matches_float64(loss(spec, params), ground_truth(spec, params), input, target)


@pytest.mark.parametrize("spec,params", CLASS_SUM_CASES)
def test_target_term_is_not_cancelled(backend, device, spec, params):
    # Confident rows (o_t = 100, every other class just inside its margin): the loss is the small
    # sum over j != t, which must not be lost next to the target's own term. One row per target
    # position, covering every lane of the 8-wide blocks and the scalar tail (C = 37).
    num_classes = 37
    input = torch.full((num_classes, num_classes), -0.4, dtype=torch.float64)
    input.fill_diagonal_(100.0)
    input = input.float().to(device)
    target = torch.arange(num_classes, device=device)
    out, grad = value_and_grad(loss(spec, params), input, target, reduction="none")
    ref_out, ref_grad = value_and_grad(ground_truth(spec, params), input.double(), target, reduction="none",
                                       upstream_dtype=torch.float32)
    assert_close(out, ref_out, torch.float32, msg="value")  # atol unscaled: small losses must be exact
    assert_close(grad, ref_grad, torch.float32, scale=ref_grad.abs().max().item(), msg="gradient")


@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("gradient", ["fused", "recompute"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(device, spec, params, gradient, reduction):
    lossext.set_gradient_mode(gradient)
    try:
        target = torch.tensor([0, 3, -100, 6, 2])
        input = kink_free_input(spec, params, target, (5, 7), device).requires_grad_(True)
        weight = torch.rand(7, dtype=torch.float64, device=device) + 0.1
        target = target.to(device)
        assert torch.autograd.gradcheck(
            lambda x: spec.function(x, target, **params, weight=weight, reduction=reduction), (input,))
    finally:
        lossext.set_gradient_mode(None)


@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_modes_agree(device, gradient_mode, spec, params, reduction):
    input, target = make_case((24, 13), 13, device, torch.float64)
    weight = torch.rand(13, dtype=torch.float64, device=device) + 0.1
    for upstream_seed in (1, 2):
        out, grad = value_and_grad(loss(spec, params), input, target, weight=weight, reduction=reduction,
                                   upstream_seed=upstream_seed)
        ref_out, ref_grad = value_and_grad(ground_truth(spec, params), input, target, weight=weight,
                                           reduction=reduction, upstream_seed=upstream_seed)
        assert_close(out, ref_out, torch.float64)
        assert_close(grad, ref_grad, torch.float64)
    # loss.backward() with an upstream gradient of exactly one (the fused mode returns its buffer as is).
    x = input.clone().requires_grad_(True)
    spec.function(x, target, **params, reduction="sum").backward()
    x_ref = input.clone().requires_grad_(True)
    spec.reference(x_ref, target, **params, reduction="sum").backward()
    assert_close(x.grad, x_ref.grad, torch.float64)


@requires_extension
@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gradient", ["fused", "recompute"])
def test_streaming_stores(monkeypatch, spec, params, dtype, gradient):
    # Gradients above the last-level cache are written with streaming stores
    # (csrc/cpu/row_loss_driver.h); LOSSEXT_STREAMING_STORES_ABOVE=0 forces them for small ones.
    # C = 37 puts row starts at every alignment (single elements before the first aligned
    # vector), C = 64 aligns every row, and 1000 rows of 37 split into chunks on every thread.
    monkeypatch.setenv("LOSSEXT_STREAMING_STORES_ABOVE", "0")
    lossext.set_gradient_mode(gradient)
    try:
        for rows, num_classes in ((16, 37), (16, 64), (1000, 37)):
            input, target = make_case((rows, num_classes), num_classes, "cpu", dtype)
            # Per-row losses: a mean's 1/750 would put float16 gradients among its subnormals.
            check_matches_float64(loss(spec, params), ground_truth(spec, params), input, target, reduction="none")
    finally:
        lossext.set_gradient_mode(None)


# ---- Special values and edge cases. ----

INF, NAN = math.inf, math.nan
SPECIAL_ROWS = [
    ([0.0, 1.0, 2.0, 3.0], 3),
    ([1e30, -1e30, 1e30, 0.0], 2),  # huge logits: the row max is subtracted before exp
    ([INF, 1.0, 2.0, 3.0], 1),  # +inf: NaN for the softmax losses (inf - inf)
    ([-INF, 1.0, 2.0, 3.0], 0),  # -inf at the target: p_t = 0
    ([-INF, -INF, 5.0, -INF], 2),
    ([NAN, 1.0, 2.0, 3.0], 1),
    ([-1e4, -1e4, -1e4 + 1e-2, -1e4], 2),
    ([0.0, 0.0, 0.0, -1000.0], 3),  # p_t underflows; log p_t = -1000 is still exact
    ([1.0, INF, 2.0, 3.0], 1),  # +inf at the target
    ([-0.5, 0.5, 1.0, 0.0], 0),  # exactly at hinge's kinks (margin 1/2) and L1's (0, 1)
]


@requires_extension
@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_special_values_match_reference(device, spec, params, dtype):
    # The reference runs in the same dtype (it computes in float32 for the half types, as the
    # kernel does), so both overflow alike: 1e30^2 is inf in float32, not 1e60.
    input = torch.tensor([row for row, _ in SPECIAL_ROWS], dtype=torch.float64).to(dtype).to(device)
    target = torch.tensor([t for _, t in SPECIAL_ROWS], device=device)
    out, grad = value_and_grad(loss(spec, params), input, target, reduction="none")
    ref_out, ref_grad = value_and_grad(lambda x, t, **kw: spec.reference(x, t, **params, **kw), input, target,
                                       reduction="none")
    assert torch.equal(out.isnan(), ref_out.isnan()), (out, ref_out)
    assert torch.equal(out.isinf(), ref_out.isinf()), (out, ref_out)
    finite_loss = torch.isfinite(ref_out)
    # Where the loss is finite, the gradients' NaN and inf patterns agree exactly. Where it is
    # +inf (log p_t = -inf in squared_log and alpha <= 1; p_t^(1 - 1/alpha) overflowing for
    # alpha < 1), the kernel's gradient is the signed-infinite limit phi'(u) ([k == t] - p_k)
    # while autograd through log_softmax forms 0 * inf = NaN at the target; both are non-finite.
    assert torch.equal(grad[finite_loss].isnan(), ref_grad[finite_loss].isnan()), (grad, ref_grad)
    assert torch.equal(grad[finite_loss].isinf(), ref_grad[finite_loss].isinf()), (grad, ref_grad)
    assert torch.equal(torch.isfinite(grad), torch.isfinite(ref_grad)), (grad, ref_grad)
    assert_close(out, ref_out, dtype, scale=10.0)
    assert_close(grad[finite_loss], ref_grad[finite_loss], dtype)


@pytest.mark.parametrize("spec,params", FIRST_CASES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_non_contiguous_inputs(backend, device, spec, params, layout):
    # The view is taken inside the differentiated function, so the kernel sees the strided tensor
    # and the gradient flows back to the contiguous base.
    base = torch.randn(40, 30, device=device, dtype=torch.float32) * 2
    view = LAYOUTS[layout]
    assert not view(base).is_contiguous()
    target = torch.randint(0, view(base).shape[1], (view(base).shape[0],), device=device)

    def on_view(fn):
        return lambda b: fn(view(b), target, reduction="none")

    check_matches_float64(on_view(loss(spec, params)), on_view(ground_truth(spec, params)), base)


@pytest.mark.parametrize("spec,params", FIRST_CASES)
def test_k_dimensional_non_contiguous(backend, device, spec, params):
    base = torch.randn(3, 4, 5, 7, device=device)
    target = torch.randint(0, 7, (3, 5, 4), device=device)

    def on_permuted(fn):
        return lambda b: fn(b.permute(0, 3, 2, 1), target, reduction="none")  # (3, 7, 5, 4), class dim 1

    check_matches_float64(on_permuted(loss(spec, params)), on_permuted(ground_truth(spec, params)), base)


@pytest.mark.parametrize("spec,params", FIRST_CASES)
@pytest.mark.parametrize("target_dtype", [torch.int32, torch.uint8], ids=str)
def test_target_index_dtypes(backend, device, spec, params, target_dtype):
    input, target = make_case((32, 11), 11, device, torch.float32, target_dtype=target_dtype)
    out, grad = value_and_grad(loss(spec, params), input, target)
    long_out, long_grad = value_and_grad(loss(spec, params), input, target.long())
    assert torch.equal(out, long_out) and torch.equal(grad, long_grad)
    check_matches_float64(loss(spec, params), ground_truth(spec, params), input, target.long())


@pytest.mark.parametrize("spec,params", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_edge_sizes(backend, device, spec, params, reduction):
    # One class: p_t = 1, while the raw-logit losses still see o.
    input, target = make_case((10, 1), 1, device, torch.float32, ignore_fraction=0)
    check_matches_float64(loss(spec, params), ground_truth(spec, params), input, target, reduction=reduction)
    # An empty batch: mean is NaN (0/0) as in PyTorch, sum is 0, none is empty.
    empty = torch.randn(0, 5, device=device, requires_grad=True)
    out = spec.function(empty, torch.zeros(0, dtype=torch.long, device=device), **params, reduction=reduction)
    if reduction == "none":
        assert out.shape == (0,)
    else:
        assert out.shape == () and (out.isnan() if reduction == "mean" else out == 0)
    out.sum().backward()
    assert empty.grad.shape == (0, 5)


@pytest.mark.parametrize("spec,params", FIRST_CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_all_ignored_batch(backend, device, spec, params, reduction, weighted):
    input = torch.randn(6, 5, device=device, requires_grad=True)
    target = torch.full((6,), -100, device=device)
    weight = torch.rand(5, device=device) if weighted else None
    out = spec.function(input, target, **params, weight=weight, reduction=reduction)
    expected = {"mean": torch.tensor(NAN), "sum": torch.tensor(0.0), "none": torch.zeros(6)}[reduction]
    torch.testing.assert_close(out, expected.to(device), equal_nan=True)
    (grad,) = torch.autograd.grad(out.sum(), input)
    assert torch.all(grad == 0)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 1.5])
def test_hinge_gradient_is_zero_at_the_hinge(backend, device, p):
    # At margin -/+ o = 0 the subgradient is relu's: zero (and the derivative's value for p > 1).
    margin = 0.5
    input = torch.tensor([[-margin, margin, -margin], [margin, -margin, 2.0]], device=device, requires_grad=True)
    target = torch.tensor([1, 0], device=device)
    (grad,) = torch.autograd.grad(lossext.hinge(input, target, p=p, margin=margin, reduction="sum"), input)
    (ref_grad,) = torch.autograd.grad(lossext.reference.hinge(input, target, p=p, margin=margin, reduction="sum"),
                                      input)
    torch.testing.assert_close(grad, ref_grad)
    assert torch.all(grad[0] == 0) and torch.all(grad[1, :2] == 0)
    assert grad[1, 2].item() == pytest.approx(p * 2.5 ** (p - 1), rel=1e-6)  # p (margin + o)^(p - 1), o = 2


# ---- The identities the paper proves (and the alpha-loss's limits). ----


def target_probability(input, target):
    return input.softmax(1).gather(1, target[:, None])[:, 0]


def values_and_grads(fn, input, target):
    x = input.clone().requires_grad_(True)
    out = fn(x, target)
    (grad,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), grad


@pytest.fixture
def rows(device):
    input, target = make_case((32, 9), 9, device, torch.float64, ignore_fraction=0)
    return input, target


def test_expectation_is_two_minus_two_p_t(rows):
    # Proposition 1: ||y - p||_1 = 2 - 2 p_t.
    input, target = rows
    got = values_and_grads(lambda x, t: lossext.expectation(x, t, reduction="none"), input, target)
    want = values_and_grads(lambda x, t: 2 - 2 * target_probability(x, t), input, target)
    for a, b in zip(got, want):
        assert_close(a, b, torch.float64)


def test_chebyshev_is_one_minus_p_t(rows):
    # max_j |p_j - y_j| = 1 - p_t (csrc/losses/chebyshev.h): half the expectation loss.
    input, target = rows
    got = values_and_grads(lambda x, t: lossext.chebyshev(x, t, reduction="none"), input, target)
    want = values_and_grads(lambda x, t: 1 - target_probability(x, t), input, target)
    for a, b in zip(got, want):
        assert_close(a, b, torch.float64)


def test_cauchy_schwarz_is_cross_entropy_plus_half_log_p2(rows):
    # Proposition 3: D_CS = -log p_t + (1/2) log ||p||^2.
    input, target = rows
    got = values_and_grads(lambda x, t: lossext.cauchy_schwarz(x, t, reduction="none"), input, target)
    want = values_and_grads(
        lambda x, t: F.cross_entropy(x, t, reduction="none") + 0.5 * x.softmax(1).pow(2).sum(1).log(), input, target)
    for a, b in zip(got, want):
        assert_close(a, b, torch.float64)


def test_regularized_expectation_is_one_minus_two_p_t_plus_p2(rows):
    # Proposition 1's expansion: ||y - p||^2 = 1 - 2 p_t + ||p||^2.
    input, target = rows
    got = values_and_grads(lambda x, t: lossext.regularized_expectation(x, t, reduction="none"), input, target)
    want = values_and_grads(lambda x, t: 1 - 2 * target_probability(x, t) + x.softmax(1).pow(2).sum(1),
                            input, target)
    for a, b in zip(got, want):
        assert_close(a, b, torch.float64)


def test_squared_log_is_squared_cross_entropy(rows):
    input, target = rows
    got = values_and_grads(lambda x, t: lossext.squared_log(x, t, reduction="none"), input, target)
    want = values_and_grads(lambda x, t: F.cross_entropy(x, t, reduction="none") ** 2, input, target)
    for a, b in zip(got, want):
        assert_close(a, b, torch.float64)


def test_tanimoto_range(device):
    # In [-1, 0]: -1 exactly when p = y (one class, or a dominant target), 0 when p_t underflows.
    input = torch.randn(64, 6, device=device, dtype=torch.float64) * 5
    target = torch.randint(0, 6, (64,), device=device)
    out = lossext.tanimoto(input, target, reduction="none")
    assert torch.all(out <= 0) and torch.all(out >= -1)
    one_class = lossext.tanimoto(torch.randn(4, 1, device=device), torch.zeros(4, dtype=torch.long, device=device),
                                 reduction="none")
    assert torch.all(one_class == -1)
    extremes = torch.tensor([[100.0, 0.0, 0.0], [-200.0, 0.0, 0.0]], device=device)
    out = lossext.tanimoto(extremes, torch.zeros(2, dtype=torch.long, device=device), reduction="none")
    torch.testing.assert_close(out, torch.tensor([-1.0, 0.0], device=device))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_alpha_one_is_cross_entropy(device, dtype):
    input, target = make_case((16, 9), 9, device, dtype)
    weight = (torch.rand(9, dtype=torch.float64) + 0.1).to(dtype).to(device)
    check_matches_float64(lambda x, t, **kw: lossext.alpha_loss(x, t, 1.0, **kw),
                          lambda x, t, **kw: F.cross_entropy(x, t, **float64_kwargs(kw)), input, target, weight=weight)


def test_alpha_near_one_is_continuous(device):
    # With beta = 1 - 1/alpha ~ 1e-9, (1 - p_t^beta) / beta computed naively in float32 is 0 / beta = 0
    # (p_t^beta rounds to 1); the expm1 form gives cross-entropy to float32 accuracy.
    input, target = make_case((16, 9), 9, device, torch.float32, ignore_fraction=0)
    for alpha in (1.0 - 1e-9, 1.0 + 1e-9):
        check_matches_float64(lambda x, t, **kw: lossext.alpha_loss(x, t, alpha, **kw), F.cross_entropy,
                              input, target)


def test_alpha_tends_to_one_minus_p_t(rows):
    input, target = rows
    limit = 1 - target_probability(input, target)
    torch.testing.assert_close(lossext.alpha_loss(input, target, math.inf, reduction="none"), limit)
    # l_alpha - l_inf = O(1/alpha): the gap shrinks tenfold with every tenfold alpha.
    gaps = [(lossext.alpha_loss(input, target, alpha, reduction="none") - limit).abs().max().item()
            for alpha in (10.0, 100.0, 1000.0, 10000.0)]
    for wider, narrower in zip(gaps, gaps[1:]):
        assert narrower < wider / 5
    assert gaps[-1] < 1e-3


# ---- Modules, autograd Functions, torch.compile. ----


@pytest.mark.parametrize("spec,params", CASES)
def test_module_and_autograd_function(device, spec, params):
    input, target = make_case((12, 9), 9, device, torch.float32)
    weight = torch.rand(9, device=device) + 0.1
    module = getattr(lossext.nn, spec.module)(**params, weight=weight, reduction="sum").to(device)
    expected = spec.function(input, target, **params, weight=weight, reduction="sum")
    torch.testing.assert_close(module(input, target), expected)
    assert all(f"{name}={value}" in repr(module) for name, value in params.items())
    assert "reduction='sum'" in repr(module)

    x = input.clone().requires_grad_(True)
    out = getattr(lossext.autograd, spec.function_class).apply(x, target, *params.values(), weight, -100, "mean")
    out.backward()
    x_ref = input.clone().requires_grad_(True)
    spec.reference(x_ref, target, **params, weight=weight).backward()
    assert_close(out.detach(), spec.reference(input, target, **params, weight=weight), torch.float32)
    assert_close(x.grad, x_ref.grad, torch.float32)
    with pytest.raises(TypeError, match="apply takes"):
        getattr(lossext.autograd, spec.function_class).apply(x, target, *params.values(), weight, -100, "mean", 0)


def test_module_parameters_are_read_at_each_call(device):
    input, target = make_case((8, 5), 5, device, torch.float32, ignore_fraction=0)
    module = lossext.nn.AlphaLoss(2.0)
    first = module(input, target)
    module.alpha = 1.0  # an alpha schedule
    torch.testing.assert_close(module(input, target), F.cross_entropy(input, target))
    assert not torch.equal(first, module(input, target))
    with pytest.raises(TypeError):
        lossext.nn.AlphaLoss()  # alpha has no default
    assert (lossext.nn.HingeLoss().p, lossext.nn.HingeLoss().margin) == (1.0, 0.5)  # the function's defaults
    assert lossext.nn.HingeLoss(2.0).p == 2.0 and lossext.nn.HingeLoss(margin=1.0).margin == 1.0


class TinyClassifier(torch.nn.Module):
    def __init__(self, loss_module):
        super().__init__()
        self.linear = torch.nn.Linear(16, 10)
        self.loss = loss_module

    def forward(self, x, target):
        return self.loss(self.linear(x), target)


def check_compiled_training_step(device, spec, params, backend):
    torch._dynamo.reset()
    model = TinyClassifier(getattr(lossext.nn, spec.module)(**params)).to(device)
    x = torch.randn(32, 16, device=device)
    target = torch.randint(0, 10, (32,), device=device)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    out = compiled(x, target)
    out.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    expected = spec.reference(model.linear(x), target, **params)
    expected.backward()
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, want)


@requires_extension
@pytest.mark.parametrize("spec,params", FIRST_CASES)
@pytest.mark.parametrize("gradient", ["fused", "recompute"])
def test_torch_compile_fullgraph(device, spec, params, gradient):
    lossext.set_gradient_mode(gradient)
    try:
        check_compiled_training_step(device, spec, params, "aot_eager")
    finally:
        lossext.set_gradient_mode(None)


@requires_extension
def test_torch_compile_inductor(device):
    spec = SPEC_BY_NAME["hinge"]
    check_compiled_training_step(device, spec, dict(p=1.5), "inductor")


@requires_extension
@pytest.mark.parametrize("spec,params", CASES)
def test_forward_out_writes_the_gradient_over_the_logits(spec, params):
    # The CPU kernels read each row (or, in one pass, each logit) before writing its gradient.
    input, target = make_case((7, 37), 37, "cpu", torch.float32)
    logits = input.clone()
    op = getattr(torch.ops.lossext, f"{spec.name}_forward_out")
    out = op(logits, target, None, list(params.values()), None, -100, 1, logits)
    x = input.double().requires_grad_(True)
    expected = spec.reference(x, target, **params)
    expected.backward()
    assert_close(out, expected.detach(), torch.float32, scale=max(1.0, expected.abs().item()))
    assert_close(logits, x.grad, torch.float32, scale=x.grad.abs().max().item())


# ---- Bad input. ----


@pytest.mark.parametrize("call,match", [
    (lambda x, t: lossext.hinge(x, t, p=0.5), "p must"),
    (lambda x, t: lossext.hinge(x, t, p=math.inf), "p must"),
    (lambda x, t: lossext.hinge(x, t, p=math.nan), "p must"),
    (lambda x, t: lossext.hinge(x, t, margin=math.inf), "margin must"),
    (lambda x, t: lossext.hinge(x, t, margin=math.nan), "margin must"),
    (lambda x, t: lossext.alpha_loss(x, t, 0.0), "alpha must"),
    (lambda x, t: lossext.alpha_loss(x, t, -2.0), "alpha must"),
    (lambda x, t: lossext.alpha_loss(x, t, math.nan), "alpha must"),
    (lambda x, t: lossext.reference.hinge(x, t, p=0.9), "p must"),
    (lambda x, t: lossext.reference.alpha_loss(x, t, -math.inf), "alpha must"),
    (lambda x, t: lossext.nn.HingeLoss(p=0.0)(x, t), "p must"),
])
def test_invalid_params_raise_value_error(backend, call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.randn(4, 5), torch.tensor([0, 1, 2, 3]))


@requires_extension
@pytest.mark.parametrize("name,params,match", [
    ("hinge", [0.5, 0.5], "p must"),
    ("hinge", [math.inf, 0.5], "p must"),
    ("hinge", [2.0, math.nan], "margin must"),
    ("hinge", [2.0], "params"),
    ("alpha_loss", [0.0], "alpha must"),
    ("alpha_loss", [math.nan], "alpha must"),
    ("l1", [1.0], "params"),
])
def test_ops_check_their_params(name, params, match):
    x, t = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    ops = torch.ops.lossext
    with pytest.raises(RuntimeError, match=match):
        getattr(ops, f"{name}_forward")(x, t, None, params, None, -100, 1, False)
    with pytest.raises(RuntimeError, match=match):
        getattr(ops, f"{name}_backward")(torch.ones(()), x, t, None, params, None, -100, 1)


@pytest.mark.parametrize("spec,params", FIRST_CASES)
def test_common_bad_input(backend, spec, params):
    # The same checks (and exception types) as cross_entropy, through the shared canonicalize.
    fn = loss(spec, params)
    x = torch.randn(4, 5)
    checks = [
        (IndexError, "out of bounds", lambda: fn(x, torch.tensor([0, 1, 5, 3]))),
        (ValueError, "batch_size", lambda: fn(x, torch.tensor([0, 1, 2]))),
        (RuntimeError, "target", lambda: fn(x, torch.tensor([0.0, 1.0, 2.0, 3.0]))),
        (RuntimeError, "weight", lambda: fn(x, torch.tensor([0, 1, 2, 3]), weight=torch.ones(3))),
        (ValueError, "reduction", lambda: fn(x, torch.tensor([0, 1, 2, 3]), reduction="avg")),
        (NotImplementedError, "input", lambda: fn(torch.ones(4, 5, dtype=torch.long), torch.tensor([0, 1, 2, 3]))),
    ]
    for exception, match, call in checks:
        with pytest.raises(exception, match=match):
            call()
