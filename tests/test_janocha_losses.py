"""What is particular to the Janocha & Czarnecki (2017) losses and the alpha-loss.

The checks every loss goes through are in test_losses.py, over the op-info table
(lossext/testing/loss_info.py); here are the identities the paper proves, the alpha-loss's
limits, hinge at its kink, the modules' parameters and the parameter checks.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import lossext
from conftest import assert_close
from loss_checks import check_matches_float64, float64_kwargs, make_case

requires_extension = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")


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
