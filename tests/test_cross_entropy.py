"""lossext.cross_entropy against F.cross_entropy and lossext.reference.cross_entropy."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import lossext
from conftest import DTYPES, assert_close
from loss_checks import (LAYOUTS, REDUCTIONS, check_matches_float64, float64_kwargs, make_case, resolve,
                         value_and_grad)

OPTIONS = [
    dict(),
    dict(weight=True),
    dict(label_smoothing=0.2),
    dict(weight=True, label_smoothing=0.3),
    dict(ignore_index=2),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape", [(37,), (16, 37), (4, 37, 3, 5)], ids=str)
def test_matches_torch_and_reference(backend, device, dtype, reduction, options, shape):
    num_classes = shape[0] if len(shape) == 1 else shape[1]
    input, target = make_case(shape, num_classes, device, dtype, ignore_index=options.get("ignore_index", -100))
    kwargs = resolve(options, num_classes, device, dtype)

    def ground_truth(x, t, **kw):
        return F.cross_entropy(x, t, **float64_kwargs(kw))

    check_matches_float64(lossext.cross_entropy, ground_truth, input, target, reduction=reduction, **kwargs)
    # The reference itself is held to the same standard.
    check_matches_float64(lossext.reference.cross_entropy, ground_truth, input, target, reduction=reduction,
                          **kwargs)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [dict(), dict(weight=True), dict(weight=True, label_smoothing=0.25)],
                         ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("shape", [(9,), (8, 9), (2, 9, 4)], ids=str)
def test_probability_targets(backend, device, dtype, reduction, options, shape):
    num_classes = shape[0] if len(shape) == 1 else shape[1]
    input = torch.randn(shape, dtype=torch.float64).to(dtype).to(device)
    class_dim = 0 if len(shape) == 1 else 1
    target = torch.rand(shape, dtype=torch.float64).softmax(class_dim).to(dtype).to(device)
    kwargs = resolve(options, num_classes, device, dtype)

    def ground_truth(x, t, **kw):
        return F.cross_entropy(x, t.double(), **float64_kwargs(kw))

    check_matches_float64(lossext.cross_entropy, ground_truth, input, target, reduction=reduction, **kwargs)


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gradient", ["fused", "recompute"])
@pytest.mark.parametrize("options", [dict(), dict(weight=True, label_smoothing=0.2)], ids=lambda o: "-".join(o) or "plain")
def test_streaming_stores(monkeypatch, dtype, gradient, options):
    # LOSSEXT_STREAMING_STORES_ABOVE=0 makes the CPU driver stream every gradient (it does so for
    # gradients above the last-level cache); 37 classes start rows at every alignment, 64 at none
    # but the first, and 1000 rows split into chunks on every thread.
    monkeypatch.setenv("LOSSEXT_STREAMING_STORES_ABOVE", "0")
    lossext.set_gradient_mode(gradient)
    try:
        for rows, num_classes in ((16, 37), (16, 64), (1000, 37)):
            input, target = make_case((rows, num_classes), num_classes, "cpu", dtype)
            kwargs = resolve(options, num_classes, "cpu", dtype)
            check_matches_float64(lossext.cross_entropy, lambda x, t, **kw: F.cross_entropy(x, t, **float64_kwargs(kw)),
                                  input, target, reduction="none", **kwargs)
            probabilities = torch.rand(rows, num_classes, dtype=torch.float64).softmax(1).to(dtype)
            check_matches_float64(lossext.cross_entropy,
                                  lambda x, t, **kw: F.cross_entropy(x, t.double(), **float64_kwargs(kw)),
                                  input, probabilities, reduction="none", **kwargs)
    finally:
        lossext.set_gradient_mode(None)


def test_probability_target_gradient_flows_to_target(device):
    # The kernels produce no gradient for soft targets; lossext must still give one (through the reference).
    input = torch.randn(4, 6, device=device, requires_grad=True)
    target = torch.rand(4, 6, device=device).softmax(1).requires_grad_(True)
    (grad,) = torch.autograd.grad(lossext.cross_entropy(input, target), target)
    (expected,) = torch.autograd.grad(F.cross_entropy(input, target), target)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("target_dtype", [torch.int64, torch.int32, torch.uint8], ids=str)
def test_target_index_dtypes(backend, device, target_dtype):
    input, target = make_case((32, 11), 11, device, torch.float32, target_dtype=target_dtype)
    check_matches_float64(lossext.cross_entropy, F.cross_entropy, input, target.long() if target_dtype == torch.int32 else target)
    out, grad = value_and_grad(lossext.cross_entropy, input, target)
    ref_out, ref_grad = value_and_grad(F.cross_entropy, input, target.long())
    assert_close(out, ref_out, torch.float32)
    assert_close(grad, ref_grad, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_edge_sizes(backend, device, dtype, reduction):
    # One class: every row's loss is zero and so is its gradient.
    input, target = make_case((10, 1), 1, device, dtype, ignore_fraction=0)
    out, grad = check_matches_float64(lossext.cross_entropy, F.cross_entropy, input, target, reduction=reduction)
    assert torch.all(out == 0) and torch.all(grad == 0)
    # An empty batch: mean is NaN (0/0) as in PyTorch, sum is 0, none is empty.
    empty = torch.randn(0, 5, device=device, dtype=dtype, requires_grad=True)
    empty_target = torch.zeros(0, dtype=torch.long, device=device)
    out = lossext.cross_entropy(empty, empty_target, reduction=reduction)
    expected = F.cross_entropy(empty.detach(), empty_target, reduction=reduction)
    assert out.shape == expected.shape
    assert_close(out, expected, dtype)
    out.sum().backward()
    assert empty.grad.shape == (0, 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_very_many_classes(backend, dtype):
    input, target = make_case((3, 200_003), 200_003, "cpu", dtype, ignore_fraction=0)
    check_matches_float64(lossext.cross_entropy, F.cross_entropy, input, target)
    check_matches_float64(lossext.cross_entropy, F.cross_entropy, input, target, label_smoothing=0.1)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kwargs", [dict(), dict(label_smoothing=0.1), dict(reduction="none")], ids=str)
def test_non_contiguous_inputs(backend, device, layout, kwargs):
    # The view is taken inside the differentiated function, so the kernel sees the strided tensor
    # and the gradient flows back to the contiguous base.
    base = torch.randn(40, 30, device=device, dtype=torch.float32)
    view = LAYOUTS[layout]
    assert not view(base).is_contiguous()
    target = torch.randint(0, view(base).shape[1], (view(base).shape[0],), device=device)

    def on_view(fn):
        return lambda b: fn(view(b), target, **kwargs)

    check_matches_float64(on_view(lossext.cross_entropy), on_view(F.cross_entropy), base)


def test_k_dimensional_non_contiguous(backend, device):
    base = torch.randn(3, 4, 5, 7, device=device)
    target = torch.randint(0, 7, (3, 5, 4), device=device)

    def on_permuted(fn):
        return lambda b: fn(b.permute(0, 3, 2, 1), target, reduction="none")  # (3, 7, 5, 4), class dim 1

    check_matches_float64(on_permuted(lossext.cross_entropy), on_permuted(F.cross_entropy), base)


SPECIAL_ROWS = [
    [0.0, 1.0, 2.0, 3.0],
    [1e30, -1e30, 1e30, 0.0],  # huge logits: the row max is subtracted before exp
    [float("inf"), 1.0, 2.0, 3.0],  # +inf: NaN in PyTorch (inf - inf)
    [float("-inf"), 1.0, 2.0, 3.0],  # -inf at the target: infinite loss, finite gradient
    [float("-inf"), float("-inf"), 5.0, float("-inf")],
    [float("nan"), 1.0, 2.0, 3.0],
    [-1e4, -1e4, -1e4 + 1e-2, -1e4],
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_special_values_match_torch(backend, device, dtype, label_smoothing):
    input = torch.tensor(SPECIAL_ROWS, dtype=torch.float64).to(dtype).to(device)
    target = torch.tensor([3, 2, 1, 0, 2, 1, 2], device=device)
    out, grad = value_and_grad(lossext.cross_entropy, input, target, reduction="none", label_smoothing=label_smoothing)
    ref_out, ref_grad = value_and_grad(F.cross_entropy, input.double(), target, reduction="none",
                                       label_smoothing=label_smoothing)
    # Same NaN and inf pattern, same finite values.
    assert torch.equal(out.isnan(), ref_out.isnan()), (out, ref_out)
    assert torch.equal(out.isinf(), ref_out.isinf()), (out, ref_out)
    assert torch.equal(grad.isnan(), ref_grad.isnan()), (grad, ref_grad)
    assert_close(out, ref_out, dtype, scale=10.0)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_all_ignored_batch(backend, device, reduction, weighted):
    input = torch.randn(6, 5, device=device, requires_grad=True)
    target = torch.full((6,), -100, device=device)
    weight = torch.rand(5, device=device) if weighted else None
    out = lossext.cross_entropy(input, target, weight=weight, reduction=reduction, label_smoothing=0.1)
    expected = F.cross_entropy(input, target, weight=weight, reduction=reduction, label_smoothing=0.1)
    torch.testing.assert_close(out, expected, equal_nan=True)
    if reduction == "mean":
        assert out.isnan()
    (grad,) = torch.autograd.grad(out.sum(), input)
    assert torch.all(grad == 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_modes_agree(device, gradient_mode, reduction):
    input, target = make_case((24, 13), 13, device, torch.float64)
    weight = torch.rand(13, dtype=torch.float64, device=device)
    for upstream_seed in (1, 2):
        out, grad = value_and_grad(lossext.cross_entropy, input, target, weight=weight, reduction=reduction,
                                   label_smoothing=0.1, upstream_seed=upstream_seed)
        ref_out, ref_grad = value_and_grad(F.cross_entropy, input, target, weight=weight, reduction=reduction,
                                           label_smoothing=0.1, upstream_seed=upstream_seed)
        assert_close(out, ref_out, torch.float64)
        assert_close(grad, ref_grad, torch.float64)
    # loss.backward() with an upstream gradient of exactly one (the fused mode returns its buffer as is).
    x = input.clone().requires_grad_(True)
    lossext.cross_entropy(x, target, reduction="sum").backward()
    assert_close(x.grad, torch.autograd.grad(F.cross_entropy(input.requires_grad_(True), target, reduction="sum"),
                                             input)[0], torch.float64)


@pytest.mark.parametrize("gradient", ["fused", "recompute"])
@pytest.mark.parametrize("options", [dict(), dict(weight=True, label_smoothing=0.2), dict(probabilities=True)],
                         ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(device, gradient, options, reduction):
    lossext.set_gradient_mode(gradient)
    try:
        input = torch.randn(5, 7, dtype=torch.float64, device=device, requires_grad=True)
        kwargs = resolve({k: v for k, v in options.items() if k != "probabilities"}, 7, device, torch.float64)
        if options.get("probabilities"):
            target = torch.rand(5, 7, dtype=torch.float64, device=device).softmax(1)
        else:
            target = torch.tensor([0, 3, -100, 6, 2], device=device)
        assert torch.autograd.gradcheck(lambda x: lossext.cross_entropy(x, target, reduction=reduction, **kwargs),
                                        (input,))
    finally:
        lossext.set_gradient_mode(None)


def test_autograd_function_and_module(device):
    input, target = make_case((12, 9), 9, device, torch.float32)
    weight = torch.rand(9, device=device)
    x = input.clone().requires_grad_(True)
    out = lossext.autograd.CrossEntropyFunction.apply(x, target, weight, -100, "mean", 0.1)
    out.backward()
    x_ref = input.clone().requires_grad_(True)
    expected = F.cross_entropy(x_ref, target, weight=weight, label_smoothing=0.1)
    expected.backward()
    assert_close(out.detach(), expected.detach(), torch.float32)
    assert_close(x.grad, x_ref.grad, torch.float32)

    module = lossext.nn.CrossEntropyLoss(weight=weight, reduction="sum", label_smoothing=0.05).to(device)
    native = torch.nn.CrossEntropyLoss(weight=weight, reduction="sum", label_smoothing=0.05).to(device)
    assert_close(module(input, target), native(input, target), torch.float32, scale=10)
    assert "label_smoothing=0.05" in repr(module)
