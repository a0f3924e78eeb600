"""Accuracy at the edges found by fuzzing (issue 13, item 4): one regression test at each reproducer, against
PyTorch where it is accurate there and against a float64 (or mpmath) truth of the same rounded inputs.

Each tolerance says why it is what it is; "ulp" is the spacing of the dtype at the true value.
"""

import math

import mpmath
import pytest
import torch
import torch.nn.functional as F

import lossext

requires_extension = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")


def relative_error(actual: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return ((actual.double() - truth.double()).abs() / truth.double().abs()).max()


def input_gradient(fn, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """d(sum of fn(x, ...))/dx."""
    x = x.detach().clone().requires_grad_()
    y = fn(x, *args, **kwargs)
    y.backward(torch.ones_like(y))
    return x.grad


# ---- hardtanh: a bound between two values of the dtype. ----


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_hardtanh_bound_between_two_values_of_the_dtype(backend, dtype):
    # The reproducer: float16 1.0 lies below max_val = 1.0001 (which float16 rounds to 1.0), so it is not
    # clamped and its gradient is 1, as in PyTorch; 1.5 is clamped to the same 1.0, gradient 0. Exact answers.
    for min_val, max_val in [(-1.0, 1.0001), (-1.0, 0.9999), (-1.0001, 1.0), (-0.3, 0.7)]:
        x = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.7, 0.9999, 1.0, 1.5], dtype=dtype)
        ours = input_gradient(lossext.hardtanh, x, min_val, max_val)
        theirs = input_gradient(F.hardtanh, x, min_val, max_val)
        assert torch.equal(ours, theirs), (min_val, max_val, ours, theirs)
        assert torch.equal(lossext.hardtanh(x, min_val, max_val), F.hardtanh(x, min_val, max_val))


@requires_extension
def test_hardtanh_saves_the_output_only_where_it_decides_as_the_input():
    saved = []

    def keep(tensor):
        saved.append(tensor)
        return tensor

    for dtype, bounds, expected in [(torch.float16, (-1.0, 1.0), "output"), (torch.float16, (-1.0, 1.0001), "input"),
                                    (torch.float32, (0.0, 6.0), "output"), (torch.float32, (-0.1, 0.1), "input"),
                                    (torch.float64, (-0.1, 0.1), "output")]:
        saved.clear()
        x = torch.randn(8, dtype=dtype, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            y = lossext.hardtanh(x, *bounds)
        (kept,) = saved
        assert kept.data_ptr() == (y if expected == "output" else x).data_ptr(), (dtype, bounds)


# ---- ELU and SELU far left: the slope from the input. ----


@pytest.mark.parametrize("name", ["elu", "selu"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_elu_and_selu_slope_far_left_is_relatively_accurate(backend, name, dtype):
    # The reproducers: bfloat16 selu at -8, -12, -20 gave 2.86e-4 each (exactly 5.9e-4, 1.1e-5, 3.6e-9), bfloat16
    # elu 0 for x <= -8, float32 elu at -17 gave 5.96e-8 (exactly 4.14e-8). The truth is the float64 derivative
    # of the same rounded inputs; the kernels compute scale alpha e^x in float32 (a few ulp of float32) and round
    # once to the dtype: one rounding, half an ulp, 2^-8 (bfloat16), 2^-11 (float16) or ~2^-23 plus the vector
    # exp's 2e-7 (float32). float16's smallest normal is 6.1e-5: its points stop at -8 (e^-8 = 3.4e-4).
    points = [-1.0, -3.0, -8.0] if dtype == torch.float16 else [-1.0, -3.0, -8.0, -12.0, -17.0, -20.0, -40.0]
    x = torch.tensor(points, dtype=dtype)
    ours = input_gradient(getattr(lossext, name), x)
    truth = input_gradient(getattr(F, name), x.double())
    bound = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11, torch.float32: 5e-7}[dtype]
    assert relative_error(ours, truth) <= bound
    # As accurate as PyTorch's own (which takes the input too), or better.
    theirs = input_gradient(getattr(F, name), x)
    assert relative_error(ours, truth) <= max(relative_error(theirs, truth), bound)


# ---- alpha-loss with alpha < 1: the gradient in log space. ----


@requires_extension
@pytest.mark.parametrize("mode", ["fused", "recompute"])
def test_alpha_loss_small_alpha_keeps_gradients_that_underflow_alone(mode):
    lossext.set_gradient_mode(mode)
    try:
        # The reproducer: p_t = e^-88 / S, the gradient at class k != t is p_t^(-1) p_k = e^(o_k - o_t) = 1 at
        # classes 2 and 3, where e^88 (the scale) times e^-88 (exp(o_k - m), below float32's exp flush at e^-87)
        # had given 0. Expected to float32's rounding of exp(88) and log S: a few ulp, 1e-6 relative.
        x = torch.tensor([[0.0, 88.0, 0.0, 0.0]])
        target = torch.tensor([0])
        ours = input_gradient(lossext.alpha_loss, x, target, 0.5, reduction="sum")
        truth = input_gradient(lossext.reference.alpha_loss, x.double(), target, 0.5, reduction="sum")
        torch.testing.assert_close(ours.double(), truth, rtol=1e-6, atol=0)
        assert ours[0, 2].item() == pytest.approx(1.0, rel=1e-6)
        # Where p_t^beta alone overflows float32 (e^100, alpha = 1/2) the loss is inf, but the gradient at a class
        # level with the target is still e^0 = 1, and one 30 below it e^-30 (relative 1e-6, as above).
        x = torch.tensor([[0.0, 100.0, 0.0, -30.0]])
        grad = input_gradient(lambda t, *a, **k: lossext.alpha_loss(t, *a, **k), x, target, 0.5, reduction="sum")
        assert grad[0, 2].item() == pytest.approx(1.0, rel=1e-6)
        assert grad[0, 3].item() == pytest.approx(math.exp(-30.0), rel=1e-5)
    finally:
        lossext.set_gradient_mode(None)


# ---- regularised expectation: the sums over the other classes. ----


@requires_extension
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_regularized_expectation_does_not_cancel_as_p_t_tends_to_one(dtype):
    # The reproducer: (0, -15, -16), t = 0, gave -2.2e-19 (float32) for a sum of squares of 2.81e-13. From the
    # sums over j != t, l = ((A / S)^2 + B / S^2) with A, B, S each a sum of positive terms: a few roundings,
    # 1e-6 relative in float32, 1e-13 in float64. (The reference sums through p_t, as any composition of
    # softmax does: in float32 it is off by 18% here, in float64 by 1e-3. The truth is the formula in float64.)
    rows = [[0.0, -15.0, -16.0], [3.0, -20.0, -25.0, -29.0], [10.0, -9.0] + [-12.0] * 50]
    for row in rows:
        x = torch.tensor([row], dtype=dtype)
        o = torch.tensor(row, dtype=torch.float64)
        e = torch.exp(o - o.max())
        s, others = e.sum(), e[1:]
        truth = (others.sum() / s) ** 2 + (others ** 2).sum() / s ** 2
        value = lossext.regularized_expectation(x, torch.tensor([0]), reduction="none")
        assert value.item() >= 0
        assert relative_error(value, truth.reshape(1)) <= (1e-6 if dtype == torch.float32 else 1e-13)
        # The gradient: 2 p_k (p_k + p_t (1 - p_t) - R) for k != t (a difference that may cancel in itself, so
        # the bound is relative to the size of its terms) and -2 p_t l at the target: 1e-5 of that in float32,
        # 1e-13 in float64.
        grad = input_gradient(lossext.regularized_expectation, x, torch.tensor([0]), reduction="sum")[0].double()
        p = e / s
        miss, rest = others.sum() / s, (others ** 2).sum() / s ** 2
        expected = torch.cat([(-2 * p[0] * truth).reshape(1), 2 * p[1:] * (p[1:] + p[0] * miss - rest)])
        size = torch.cat([(2 * p[0] * truth).reshape(1), 2 * p[1:] * (p[1:] + p[0] * miss + rest)])
        assert ((grad - expected).abs() <= (1e-5 if dtype == torch.float32 else 1e-13) * size).all(), (row, grad)


@requires_extension
@pytest.mark.parametrize("boundaries", [[0, 1, 3], [0, 2, 3], [0, 1, 2, 3]])
def test_accuracy_fixes_hold_through_the_block_ops(boundaries):
    # The row-statistics seam (csrc/losses/row_partial.h) carries both fixes: a block's exp sums of the
    # regularised expectation leave the target out (the target's block and the others alike), and the alpha-loss
    # gradient takes the coefficients' exp_shift. The reproducers above, split into blocks of classes; the same
    # truths and bounds (the split adds one rounding per block to each sum).
    from lossext.losses.row_statistics import blockwise_row_loss

    x = torch.tensor([[0.0, -15.0, -16.0]])
    o = x[0].double()
    e = torch.exp(o - o.max())
    truth = (e[1:].sum() / e.sum()) ** 2 + (e[1:] ** 2).sum() / e.sum() ** 2
    loss, _, _ = blockwise_row_loss("regularized_expectation", x, torch.tensor([0]), None, [], None, -100, 2,
                                    boundaries)
    assert relative_error(loss.reshape(1), truth.reshape(1)) <= 1e-6
    x = torch.tensor([[0.0, 88.0, 0.0]])
    _, grad, _ = blockwise_row_loss("alpha_loss", x, torch.tensor([0]), None, [0.5], None, -100, 2, boundaries)
    assert grad[0, 2].item() == pytest.approx(1.0, rel=1e-6)


# ---- float16 in the fused mode: the upstream scaling before the rounding. ----


@requires_extension
@pytest.mark.parametrize("mode", ["fused", "recompute"])
def test_float16_gradient_is_scaled_before_it_is_rounded(mode):
    lossext.set_gradient_mode(mode)
    try:
        # The reproducer: hinge^4 at o = -90 has the gradient -4 (90.5)^3 = -2.965e6, beyond float16's 65504;
        # times the upstream 1e-3 it is -2964.9. Fused gave -inf. Expected: one rounding to float16, half an ulp
        # (2^-11 relative), after the float32 computation.
        x = torch.tensor([[-90.0, 0.0, 0.0]], dtype=torch.float16, requires_grad=True)
        (lossext.hinge(x, torch.tensor([0]), p=4.0, reduction="sum") * 1e-3).backward()
        exact = -4 * 90.5 ** 3 * 1e-3
        assert x.grad[0, 0].item() == pytest.approx(exact, rel=2.0**-11)
        # A loss scale (as AMP's): gradients below float16's normal range (2.5e-5 per class here, under 6.1e-5)
        # come back scaled by 1024 with float16's 11 bits, not the 9 a subnormal float16 has there.
        x = torch.zeros(1, 40_000, dtype=torch.float16)
        x[0, 0] = 1.0
        x.requires_grad_()
        (lossext.cross_entropy(x, torch.tensor([0]), reduction="sum") * 1024.0).backward()
        truth = input_gradient(F.cross_entropy, x.detach().double(), torch.tensor([0]), reduction="sum") * 1024.0
        assert relative_error(x.grad[0, 1:], truth[0, 1:]) <= 2.0**-11
    finally:
        lossext.set_gradient_mode(None)


# ---- GELU in float64. ----


@requires_extension
def test_gelu_float64_is_within_a_few_ulp():
    # F.gelu's float64 gradient is 20-40 ulp off at |x| ~ 5-8 from the roundings of x^2 and of x / sqrt 2, both
    # amplified ~x^2 times in the tails; lossext corrects both (activation_math.h). Truth: mpmath at 120 bits.
    # Bound: 4 ulp of |Phi| + |x phi| (the gradient Phi + x phi is a difference of those two terms and has a zero
    # at x = -0.75, where no relative bound holds), and 4 ulp of y for the forward; libm's erfc and exp are each
    # within an ulp, the rest are a few roundings.
    mpmath.mp.prec = 120
    x = torch.cat([torch.linspace(-12, 12, 2401, dtype=torch.float64),
                   torch.tensor([-37.5, -30.0, -8.17, -7.59, 5.5, 7.3], dtype=torch.float64)])
    grad = input_gradient(lossext.gelu, x)
    y = lossext.gelu(x)
    eps = torch.finfo(torch.float64).eps
    for value, slope, point in zip(y.tolist(), grad.tolist(), x.tolist()):
        p = mpmath.mpf(point)
        cdf, density = mpmath.ncdf(p), mpmath.npdf(p)
        exact_y, exact_slope = p * cdf, cdf + p * density
        assert abs(mpmath.mpf(value) - exact_y) <= 4 * eps * abs(exact_y), point
        assert abs(mpmath.mpf(slope) - exact_slope) <= 4 * eps * (abs(cdf) + abs(p * density)), point


# ---- The loss value is the same for every thread count. ----


@requires_extension
@pytest.mark.parametrize("shape", [(65536, 10), (40_001, 3), (300_000, 2)])
def test_reduced_loss_is_bitwise_the_same_for_every_thread_count(shape):
    # at::sum splits a long sum among its threads: the rows' values summed that way differ by an ulp between
    # thread counts (checked first, so the test shows a difference it removes); the op sums fixed blocks of
    # rows in a fixed order (row_loss_op.h, sum_in_fixed_order).
    threads = torch.get_num_threads()
    try:
        for seed in range(20):
            generator = torch.Generator().manual_seed(seed)
            x = torch.randn(shape, generator=generator) * 3
            t = torch.randint(0, shape[1], (shape[0],), generator=generator)
            rows = lossext.cross_entropy(x, t, reduction="none")
            sums = set()
            for count in (1, 2, 3):
                torch.set_num_threads(count)
                sums.add(rows.sum().item())
            if len(sums) > 1:
                break
        else:
            pytest.skip("no input found on which at::sum depends on the thread count")
        for reduction in ("mean", "sum"):
            for loss_name in ("cross_entropy", "regularized_expectation"):
                values = set()
                for count in (1, 2, 3, 4):
                    torch.set_num_threads(count)
                    values.add(getattr(lossext, loss_name)(x, t, reduction=reduction).item())
                assert len(values) == 1, (loss_name, reduction, values)
    finally:
        torch.set_num_threads(threads)
