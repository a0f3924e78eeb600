"""Every row loss of the op-info table (lossext/testing/loss_info.py) through the same checks.

The ground truth is PyTorch's own op in float64 where the loss has one (cross-entropy), else the
reference in float64, on the same (already rounded) inputs, except where a test says otherwise.
What is particular to a loss is in its own file (test_cross_entropy.py, test_two_scale.py,
test_janocha_losses.py).
"""

import math
import os
import subprocess
import sys

import pytest
import torch

import lossext
from conftest import DTYPES, assert_close
from loss_checks import (CASES, FIRST_CASES, LAYOUTS, REDUCTIONS, cases_with_backends, check_matches_float64,
                         ground_truth, loss, make_case, resolve, tensor_params, value_and_grad, value_and_grads)

requires_extension = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_op_info_tables_import_without_pytest():
    # bench/cases.py builds its cases from them, outside any test run.
    code = ("import sys; sys.modules['pytest'] = None; "
            "import lossext.testing.loss_info, lossext.testing.activation_info, bench.cases; "
            "print(len(bench.cases.CASES) == len(lossext.testing.loss_info.LOSSES))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env=dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def probabilities_like(input: torch.Tensor) -> torch.Tensor:
    """Random class probabilities of input's shape (class dim 1, or 0 for 1-D), in its dtype."""
    class_dim = 0 if input.dim() == 1 else 1
    return torch.rand(input.shape, dtype=torch.float64).softmax(class_dim).to(input.dtype).to(input.device)


# ---- Values and gradients against the ground truth. ----


@pytest.mark.parametrize("op,params", CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_ground_truth(implementation, device, op, params, dtype, reduction):
    for sample in op.samples(dtype, reduction):
        torch.manual_seed(0)  # each sample draws as if it were the test's only one
        input, target = op.draw(sample.shape, dtype, device, params, ignore_index=sample.ignore_index)
        kwargs = resolve(dict(weight=sample.weighted, ignore_index=sample.ignore_index), sample.num_classes, device,
                         dtype)
        scales = tensor_params(op, dtype, device)
        context = f"{sample}: "
        check_matches_float64(loss(op, params), ground_truth(op, params), input, target, reduction=reduction,
                              tensor_params=scales, family=op.tolerance, context=context, **kwargs)
        if op.native is not None and implementation[0] == "reference":
            # The reference itself is held to the same standard.
            check_matches_float64(loss(op, params, op.reference), ground_truth(op, params), input, target,
                                  reduction=reduction, tensor_params=scales, family=op.tolerance,
                                  context=f"reference, {context}", **kwargs)


@pytest.mark.parametrize("backend,op,params", cases_with_backends(CASES), indirect=["backend"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_very_many_classes(backend, op, params, dtype):
    # Long rows: the kernel's vector loops, scalar tail (20_003 = 8 * 2500 + 3) and multi-task rows.
    # The reference only where PyTorch's op is the truth: with p_t ~ 1e-7 the float32 reference's
    # autograd loses these rows' small gradients to rounding (expectation's sum_j sgn(y_j - p_j) p_j
    # cancels against 1), while the kernel's closed forms (2 p_t p_k) do not.
    input, target = op.draw((3, op.very_many_classes), dtype, "cpu", params, ignore_fraction=0)
    check_matches_float64(loss(op, params), ground_truth(op, params), input, target, family=op.tolerance)


@pytest.mark.parametrize("op,params", [case for case in CASES if case.values[0].sums_class_terms])
def test_target_term_is_not_cancelled(backend, device, op, params):
    # Confident rows (o_t = 100, every other class just inside its margin): the loss is the small
    # sum over j != t, which must not be lost next to the target's own term. One row per target
    # position, covering every lane of the 8-wide blocks and the scalar tail (C = 37).
    num_classes = 37
    input = torch.full((num_classes, num_classes), -0.4, dtype=torch.float64)
    input.fill_diagonal_(100.0)
    input = input.float().to(device)
    target = torch.arange(num_classes, device=device)
    out, grad = value_and_grad(loss(op, params), input, target, reduction="none")
    ref_out, ref_grad = value_and_grad(ground_truth(op, params), input.double(), target, reduction="none",
                                       upstream_dtype=torch.float32)
    # atol unscaled: small losses must be exact.
    assert_close(out, ref_out, torch.float32, msg="value", family=op.tolerance)
    assert_close(grad, ref_grad, torch.float32, scale=ref_grad.abs().max().item(), msg="gradient",
                 family=op.tolerance)


@pytest.mark.parametrize("op,params", CASES)
@pytest.mark.parametrize("gradient", ["fused", "recompute"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(device, op, params, gradient, reduction):
    # Without and with a class weight, and for soft targets too where the loss takes them; the
    # learnable scalars are checked along with the logits.
    lossext.set_gradient_mode(gradient)
    try:
        targets = ["indices"] + (["probabilities"] if op.supports_probabilities else [])
        for kind in targets:
            for weighted in (False, True):
                torch.manual_seed(0)
                target = torch.tensor([0, 3, -100, 6, 2])
                input = op.smooth_logits((5, 7), target, params).to(device).requires_grad_(True)
                weight = torch.rand(7, dtype=torch.float64, device=device) + 0.1 if weighted else None
                target = target.to(device) if kind == "indices" else probabilities_like(input.detach())
                scales = tensor_params(op, torch.float64, device)

                def fn(x, *scale_values):
                    return loss(op, params)(x, target, **dict(zip(scales, scale_values)), weight=weight,
                                            reduction=reduction)

                assert torch.autograd.gradcheck(fn, (input, *scales.values())), (kind, weighted)
    finally:
        lossext.set_gradient_mode(None)


@pytest.mark.parametrize("op,params", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_modes_agree(device, gradient_mode, op, params, reduction):
    input, target = op.draw((24, 13), torch.float64, device, params)
    weight = torch.rand(13, dtype=torch.float64, device=device) + 0.1
    scales = tensor_params(op, torch.float64, device)
    for upstream_seed in (1, 2):
        out, grad, param_grads = value_and_grads(loss(op, params), input, target, weight=weight, reduction=reduction,
                                                 upstream_seed=upstream_seed, tensors=scales)
        ref_out, ref_grad, ref_param_grads = value_and_grads(ground_truth(op, params), input, target, weight=weight,
                                                             reduction=reduction, upstream_seed=upstream_seed,
                                                             tensors=scales)
        assert_close(out, ref_out, torch.float64, family=op.tolerance)
        assert_close(grad, ref_grad, torch.float64, family=op.tolerance)
        for name in scales:
            assert_close(param_grads[name], ref_param_grads[name], torch.float64, msg=name, family=op.tolerance)
    # loss.backward() with an upstream gradient of exactly one (the fused mode returns its buffer as is).
    x = input.clone().requires_grad_(True)
    loss(op, params)(x, target, reduction="sum").backward()
    x_ref = input.clone().requires_grad_(True)
    ground_truth(op, params)(x_ref, target, reduction="sum").backward()
    assert_close(x.grad, x_ref.grad, torch.float64, family=op.tolerance)


STREAMING_CASES = ([pytest.param(*case.values, False, id=f"{case.id}-plain") for case in CASES]
                   + [pytest.param(*case.values, True, id=f"{case.id}-weight") for case in FIRST_CASES])


@requires_extension
@pytest.mark.parametrize("op,params,weighted", STREAMING_CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gradient", ["fused", "recompute"])
def test_streaming_stores(monkeypatch, op, params, weighted, dtype, gradient):
    # Gradients above the last-level cache are written with streaming stores
    # (csrc/cpu/row_loss_driver.h); LOSSEXT_STREAMING_STORES_ABOVE=0 forces them for small ones.
    # C = 37 puts row starts at every alignment (single elements before the first aligned
    # vector), C = 64 aligns every row, and 1000 rows of 37 split into chunks on every thread.
    # Soft targets too where the loss takes them.
    monkeypatch.setenv("LOSSEXT_STREAMING_STORES_ABOVE", "0")
    lossext.set_gradient_mode(gradient)
    try:
        for rows, num_classes in ((16, 37), (16, 64), (1000, 37)):
            input, target = op.draw((rows, num_classes), dtype, "cpu", params)
            kwargs = resolve(dict(weight=weighted), num_classes, "cpu", dtype)
            scales = tensor_params(op, dtype, "cpu")
            # Per-row losses: a mean's 1/750 would put float16 gradients among its subnormals.
            check_matches_float64(loss(op, params), ground_truth(op, params), input, target, reduction="none",
                                  tensor_params=scales, **kwargs, family=op.tolerance)
            if op.supports_probabilities:
                probabilities = probabilities_like(input)
                check_matches_float64(loss(op, params), ground_truth(op, params), input, probabilities,
                                      reduction="none", **kwargs, family=op.tolerance)
    finally:
        lossext.set_gradient_mode(None)


# ---- Special values and edge cases. ----

INF, NAN = math.inf, math.nan
SPECIAL_ROWS = [
    ([0.0, 1.0, 2.0, 3.0], 3),
    ([1e30, -1e30, 1e30, 0.0], 2),  # huge logits: the row max is subtracted before exp
    ([INF, 1.0, 2.0, 3.0], 1),  # +inf: NaN for the softmax losses (inf - inf), as in PyTorch
    ([-INF, 1.0, 2.0, 3.0], 0),  # -inf at the target: p_t = 0 (cross-entropy: infinite loss, finite gradient)
    ([-INF, -INF, 5.0, -INF], 2),
    ([NAN, 1.0, 2.0, 3.0], 1),
    ([-1e4, -1e4, -1e4 + 1e-2, -1e4], 2),
    ([0.0, 0.0, 0.0, -1000.0], 3),  # p_t underflows; log p_t = -1000 is still exact
    ([1.0, INF, 2.0, 3.0], 1),  # +inf at the target
    ([-0.5, 0.5, 1.0, 0.0], 0),  # exactly at hinge's kinks (margin 1/2) and L1's (0, 1)
]


@pytest.mark.parametrize("backend,op,params", cases_with_backends(CASES), indirect=["backend"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_special_values(backend, device, op, params, dtype):
    input = torch.tensor([row for row, _ in SPECIAL_ROWS], dtype=torch.float64).to(dtype).to(device)
    target = torch.tensor([t for _, t in SPECIAL_ROWS], device=device)
    out, grad = value_and_grad(loss(op, params), input, target, reduction="none")
    if op.native is not None:
        # PyTorch's op in float64: the same NaN and inf pattern, the same finite values.
        ref_out, ref_grad = value_and_grad(ground_truth(op, params), input.double(), target, reduction="none",
                                           upstream_dtype=dtype)
        # A true value beyond the dtype's range rounds to inf there (the z-loss of a 1e30 logit: 1e58).
        ref_out = ref_out.to(dtype).double()
        assert torch.equal(out.isnan(), ref_out.isnan()), (out, ref_out)
        assert torch.equal(out.isinf(), ref_out.isinf()), (out, ref_out)
        assert torch.equal(grad.isnan(), ref_grad.isnan()), (grad, ref_grad)
        assert_close(out, ref_out, dtype, scale=10.0, family=op.tolerance)
        assert_close(grad, ref_grad, dtype, family=op.tolerance)
        return
    # The reference runs in the same dtype (it computes in float32 for the half types, as the
    # kernel does), so both overflow alike: 1e30^2 is inf in float32, not 1e60.
    ref_out, ref_grad = value_and_grad(loss(op, params, op.reference), input, target, reduction="none")
    assert torch.equal(out.isnan(), ref_out.isnan()), (out, ref_out)
    assert torch.equal(out.isinf(), ref_out.isinf()), (out, ref_out)
    finite_loss = torch.isfinite(ref_out)
    # Where the loss is finite, the gradients' NaN and inf patterns agree exactly. Where it is
    # +inf (log p_t = -inf in squared_log and alpha <= 1; p_t^(1 - 1/alpha) overflowing for
    # alpha < 1), the kernel's gradient is the signed-infinite limit phi'(u) ([k == t] - p_k)
    # while autograd through log_softmax forms 0 * inf = NaN at the target; both are non-finite.
    assert torch.equal(grad[finite_loss].isnan(), ref_grad[finite_loss].isnan()), (grad, ref_grad)
    assert torch.equal(grad[finite_loss].isinf(), ref_grad[finite_loss].isinf()), (grad, ref_grad)
    compared = torch.ones_like(grad, dtype=torch.bool)
    if op.masks_minus_inf_logits:
        compared &= ~(torch.isneginf(input) & ref_out.isnan()[:, None])
    assert torch.equal(torch.isfinite(grad)[compared], torch.isfinite(ref_grad)[compared]), (grad, ref_grad)
    assert_close(out, ref_out, dtype, scale=10.0, family=op.tolerance)
    assert_close(grad[finite_loss], ref_grad[finite_loss], dtype, family=op.tolerance)


@pytest.mark.parametrize("op,params", CASES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_non_contiguous_inputs(backend, device, op, params, layout):
    # The view is taken inside the differentiated function, so the kernel sees the strided tensor
    # and the gradient flows back to the contiguous base.
    base = torch.randn(40, 30, device=device, dtype=torch.float32) * 2
    view = LAYOUTS[layout]
    assert not view(base).is_contiguous()
    target = torch.randint(0, view(base).shape[1], (view(base).shape[0],), device=device)
    for reduction in ("mean", "none"):
        def on_view(fn):
            return lambda b: fn(view(b), target, reduction=reduction)

        check_matches_float64(on_view(loss(op, params)), on_view(ground_truth(op, params)), base, family=op.tolerance)


@pytest.mark.parametrize("op,params", CASES)
def test_k_dimensional_non_contiguous(backend, device, op, params):
    base = torch.randn(3, 4, 5, 7, device=device)
    target = torch.randint(0, 7, (3, 5, 4), device=device)

    def on_permuted(fn):
        return lambda b: fn(b.permute(0, 3, 2, 1), target, reduction="none")  # (3, 7, 5, 4), class dim 1

    check_matches_float64(on_permuted(loss(op, params)), on_permuted(ground_truth(op, params)), base,
                          family=op.tolerance)


@pytest.mark.parametrize("op,params", CASES)
def test_target_index_dtypes(backend, device, op, params):
    for target_dtype in (torch.int64, torch.int32, torch.uint8):
        torch.manual_seed(0)
        input, target = op.draw((32, 11), torch.float32, device, params, target_dtype=target_dtype)
        out, grad = value_and_grad(loss(op, params), input, target)
        long_out, long_grad = value_and_grad(loss(op, params), input, target.long())
        assert torch.equal(out, long_out) and torch.equal(grad, long_grad), target_dtype
        check_matches_float64(loss(op, params), ground_truth(op, params), input, target.long(), family=op.tolerance)
        if op.native is not None:  # and PyTorch's op in float32
            native_out, native_grad = value_and_grad(loss(op, params, op.native), input, target.long())
            assert_close(out, native_out, torch.float32, family=op.tolerance)
            assert_close(grad, native_grad, torch.float32, family=op.tolerance)


@pytest.mark.parametrize("op,params", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_edge_sizes(backend, device, op, params, reduction):
    for dtype in DTYPES:
        # One class: p_t = 1, while the raw-logit losses still see o.
        torch.manual_seed(0)
        input, target = op.draw((10, 1), dtype, device, params, ignore_fraction=0)
        if op.one_class_matches(params):
            scales = tensor_params(op, dtype, device)
            out, grad = check_matches_float64(loss(op, params), ground_truth(op, params), input, target,
                                              reduction=reduction, tensor_params=scales, family=op.tolerance)
            if op.zero_with_one_class:
                _, _, param_grads = value_and_grads(loss(op, params), input, target, reduction=reduction,
                                                    tensors=scales)
                assert torch.all(out == 0) and torch.all(grad == 0), dtype
                assert all(torch.all(g == 0) for g in param_grads.values()), dtype
        # An empty batch: mean is NaN (0/0) as in PyTorch, sum is 0, none is empty.
        empty = torch.randn(0, 5, device=device, dtype=dtype, requires_grad=True)
        empty_target = torch.zeros(0, dtype=torch.long, device=device)
        out = loss(op, params)(empty, empty_target, reduction=reduction)
        if reduction == "none":
            assert out.shape == (0,)
        else:
            assert out.shape == () and (out.isnan() if reduction == "mean" else out == 0)
        if op.native is not None:
            expected = loss(op, params, op.native)(empty.detach(), empty_target, reduction=reduction)
            assert out.shape == expected.shape
            assert_close(out, expected, dtype, family=op.tolerance)
        out.sum().backward()
        assert empty.grad.shape == (0, 5)


@pytest.mark.parametrize("op,params", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored_batch(backend, device, op, params, reduction):
    for weighted in (False, True):
        torch.manual_seed(0)
        input = torch.randn(6, 5, device=device, requires_grad=True)
        target = torch.full((6,), -100, device=device)
        weight = torch.rand(5, device=device) if weighted else None
        out = loss(op, params)(input, target, weight=weight, reduction=reduction)
        expected = {"mean": torch.tensor(NAN), "sum": torch.tensor(0.0), "none": torch.zeros(6)}[reduction]
        torch.testing.assert_close(out, expected.to(device), equal_nan=True)
        if op.native is not None:
            native = loss(op, params, op.native)(input, target, weight=weight, reduction=reduction)
            torch.testing.assert_close(out, native, equal_nan=True)
        (grad,) = torch.autograd.grad(out.sum(), input)
        assert torch.all(grad == 0), weighted


# ---- Modules and autograd Functions. ----


@pytest.mark.parametrize("op,params", [case for case in CASES if case.values[0].module])
def test_module(device, op, params):
    input, target = make_case((12, 9), 9, device, torch.float32)
    weight = torch.rand(9, device=device) + 0.1
    module = getattr(lossext.nn, op.module)(**params, weight=weight, reduction="sum").to(device)
    expected = op.function(input, target, **params, weight=weight, reduction="sum")
    torch.testing.assert_close(module(input, target), expected)
    assert all(f"{name}={value}" in repr(module) for name, value in params.items())
    assert "reduction='sum'" in repr(module)


@pytest.mark.parametrize("op,params", [case for case in CASES if case.values[0].autograd_function])
def test_autograd_function(device, op, params):
    input, target = make_case((12, 9), 9, device, torch.float32)
    weight = torch.rand(9, device=device) + 0.1
    function_class = getattr(lossext.autograd, op.autograd_function)
    x = input.clone().requires_grad_(True)
    out = function_class.apply(x, target, *params.values(), weight, -100, "mean")
    out.backward()
    x_ref = input.clone().requires_grad_(True)
    op.reference(x_ref, target, **params, weight=weight).backward()
    assert_close(out.detach(), op.reference(input, target, **params, weight=weight), torch.float32, family=op.tolerance)
    assert_close(x.grad, x_ref.grad, torch.float32, family=op.tolerance)
    with pytest.raises(TypeError, match="apply takes"):
        function_class.apply(x, target, *params.values(), weight, -100, "mean", 0)


# ---- Bad input. ----


@pytest.mark.parametrize("op,params", FIRST_CASES)
def test_common_bad_input(backend, op, params):
    # The same checks (and exception types) for every loss, through the shared canonicalize.
    fn = loss(op, params)
    x = torch.randn(4, 5)
    checks = [
        (IndexError, "out of bounds", lambda: fn(x, torch.tensor([0, 1, 5, 3]))),
        (ValueError, "batch_size", lambda: fn(x, torch.tensor([0, 1, 2]))),
        (RuntimeError, "weight", lambda: fn(x, torch.tensor([0, 1, 2, 3]), weight=torch.ones(3))),
        (ValueError, "reduction", lambda: fn(x, torch.tensor([0, 1, 2, 3]), reduction="avg")),
        (NotImplementedError, "input", lambda: fn(torch.ones(4, 5, dtype=torch.long), torch.tensor([0, 1, 2, 3]))),
    ]
    if not op.supports_probabilities:  # else a float target of the wrong shape is a probabilities error
        checks.append((RuntimeError, "target", lambda: fn(x, torch.tensor([0.0, 1.0, 2.0, 3.0]))))
    for exception, match, call in checks:
        with pytest.raises(exception, match=match):
            call()
