"""The fused classifier head (lossext.linear_loss, linear_cross_entropy and their modules): values and
every gradient against the float64 references, against torch's F.linear_cross_entropy and against
the unfused path in the same dtype; chunking, layouts, ignored rows, compile, opcheck, bad input."""

import pytest
import torch
import torch.nn.functional as F

import lossext
from conftest import assert_close

pytestmark = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")

# N is not a multiple of the chunk size 7; H and V are small to keep the run short.
N, H, V = 13, 6, 11
REDUCTIONS = ["mean", "sum", "none"]


def two_scale_kwargs(dtype=torch.float64):
    return dict(r1=torch.tensor(1.5, dtype=dtype, requires_grad=True),
                r2=torch.tensor(4.0, dtype=dtype, requires_grad=True), eta=0.5,
                norm=torch.tensor(2.0, dtype=dtype, requires_grad=True))


# Every lossext loss with its own arguments (a callable for tensors that must be fresh per test).
LOSSES = {
    "cross_entropy": lambda: dict(label_smoothing=0.1, z_loss=0.01, logit_softcap=4.0),
    "hinge": lambda: dict(p=2.0, margin=0.5),
    "l1": dict,
    "l2": dict,
    "logistic": dict,
    "expectation": dict,
    "regularized_expectation": dict,
    "chebyshev": dict,
    "squared_log": dict,
    "tanimoto": dict,
    "cauchy_schwarz": dict,
    "alpha_loss": lambda: dict(alpha=2.0),
    "two_scale_cross_entropy": two_scale_kwargs,
}


def make_head(dtype, rows=N, hidden=H, classes=V, ignore_rows=(1, 4), seed=0):
    """x (rows, hidden), W (classes, hidden), b (classes,) in dtype (values rounded to it), targets with
    some rows ignored. Logits have magnitudes of a few units so every loss is away from saturation."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, hidden, generator=generator, dtype=torch.float64).to(dtype)
    weight = (torch.randn(classes, hidden, generator=generator, dtype=torch.float64) * 0.8).to(dtype)
    bias = torch.randn(classes, generator=generator, dtype=torch.float64).to(dtype)
    target = torch.randint(0, classes, (rows,), generator=generator)
    target[list(ignore_rows)] = -100
    return x, weight, bias, target


def tensor_arguments(kwargs):
    return [value for value in kwargs.values() if isinstance(value, torch.Tensor) and value.requires_grad]


def run_head(fn, x, weight, bias, target, kwargs, upstream=None, **options):
    """fn's output and the gradients of sum(output * upstream) for x, weight, bias and the loss's
    tensor arguments that require grad (upstream None: 1)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, weight, bias)]
    kwargs = {k: (v.detach().clone().requires_grad_(True) if isinstance(v, torch.Tensor) and v.requires_grad else v)
              for k, v in kwargs.items()}
    out = fn(leaves[0], leaves[1], target, linear_bias=leaves[2], **kwargs, **options)
    inputs = leaves + tensor_arguments(kwargs)
    grads = torch.autograd.grad(out, inputs, torch.ones_like(out) if upstream is None else upstream)
    return out.detach(), grads


def fused(loss):
    return lambda x, w, t, **kw: lossext.linear_loss(loss, x, w, t, **kw)


def reference(loss):
    return lambda x, w, t, **kw: lossext.reference.linear_loss(loss, x, w, t, **kw)


def unfused(loss):
    """The same loss on materialised logits in the input's dtype (lossext's row-loss kernels)."""
    return lambda x, w, t, linear_bias=None, **kw: getattr(lossext, loss)(F.linear(x, w, linear_bias), t, **kw)


def float64_kwargs(kwargs):
    return {k: (v.detach().double().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor) else v)
            for k, v in kwargs.items()}


def relative_errors(results, truth):
    """max |a - b| / max |b| of the output and of every gradient."""
    (out, grads), (ref_out, ref_grads) = results, truth
    return [((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()
            for a, b in zip((out,) + tuple(grads), (ref_out,) + tuple(ref_grads))]


def assert_matches(results, truth, dtype, msg):
    (out, grads), (ref_out, ref_grads) = results, truth
    assert out.shape == ref_out.shape and out.dtype == dtype, msg
    assert_close(out, ref_out, dtype, scale=max(1.0, ref_out.abs().max().item()), msg=f"{msg}: value")
    for k, (g, ref) in enumerate(zip(grads, ref_grads)):
        assert g.shape == ref.shape, f"{msg}: gradient {k} shape"
        assert_close(g, ref, dtype, scale=ref.abs().max().item(), msg=f"{msg}: gradient {k}")


def upstream_for(out_shape, dtype, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(out_shape, generator=generator, dtype=torch.float64) + 0.5).to(dtype)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_matches_reference(loss, dtype, reduction, weighted):
    x, weight, bias, target = make_head(dtype)
    kwargs = LOSSES[loss]()
    if weighted:
        kwargs["weight"] = (torch.rand(V, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
                            + 0.2).to(dtype)
    options = dict(reduction=reduction, chunk_size=7)
    out_shape = (N,) if reduction == "none" else ()
    upstream = upstream_for(out_shape, dtype)
    results = run_head(fused(loss), x, weight, bias, target, kwargs, upstream, **options)
    truth = run_head(reference(loss), x.double(), weight.double(), bias.double(), target, float64_kwargs(kwargs),
                     upstream.double(), **options)
    assert_matches(results, truth, dtype, f"{loss} {dtype} {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_half_precision_no_worse_than_unfused(loss, dtype, reduction):
    """In half precision the fused head's value and gradients are as close to float64 as those of the
    unfused path in the same dtype (logits materialised in it, then lossext's loss); fp32 rounding
    noise (4 * 2^-24 of the largest value) is allowed on top, nothing else."""
    x, weight, bias, target = make_head(dtype, rows=40, hidden=16, classes=24, ignore_rows=(3, 17, 30))
    kwargs = LOSSES[loss]()
    truth = run_head(reference(loss), x.double(), weight.double(), bias.double(), target, float64_kwargs(kwargs),
                     reduction=reduction)
    unfused_errors = relative_errors(run_head(unfused(loss), x, weight, bias, target, kwargs, reduction=reduction),
                                     truth)
    for chunk_size in (1, 7, None):
        fused_errors = relative_errors(
            run_head(fused(loss), x, weight, bias, target, kwargs, reduction=reduction, chunk_size=chunk_size), truth)
        for k, (mine, theirs) in enumerate(zip(fused_errors, unfused_errors)):
            assert mine <= 1.1 * theirs + 4 * 2.0**-24, (
                f"{loss} {dtype} {reduction} chunk {chunk_size}: output {k} error {mine:.3g} vs unfused {theirs:.3g}")


def test_float16_gradients_survive_a_loss_scale():
    """AMP scales the loss (here by 8192) so that float16 gradients do not flush: the fused head's gradients
    must then be as accurate as the unfused path's. A gradient finished in forward, before the scale
    reaches it, loses every (p - y) / N below float16's subnormals (4.9e-3 relative error here, 8x the
    unfused path's); so float16 recomputes in backward with the scale folded in."""
    rows, hidden, classes = 2048, 16, 4000
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, hidden, generator=generator, dtype=torch.float64) * 0.5
    weight = torch.randn(classes, hidden, generator=generator, dtype=torch.float64) * 0.5
    target = torch.randint(0, classes, (rows,), generator=generator)
    loss_scale = torch.tensor(8192.0, dtype=torch.float16)
    leaves64 = [x.clone().requires_grad_(True), weight.clone().requires_grad_(True)]
    truth = torch.autograd.grad(F.cross_entropy(F.linear(*leaves64), target), leaves64)

    def errors(head):
        leaves = [x.half().requires_grad_(True), weight.half().requires_grad_(True)]
        grads = torch.autograd.grad(head(*leaves, target), leaves, loss_scale)
        return [((g.double() / 8192 - t).abs().max() / t.abs().max()).item() for g, t in zip(grads, truth)]

    unfused_errors = errors(lambda x, w, t: F.cross_entropy(F.linear(x, w), t))
    fused_errors = errors(lossext.linear_cross_entropy)
    for k, (mine, theirs) in enumerate(zip(fused_errors, unfused_errors)):
        assert mine <= 1.1 * theirs + 4 * 2.0**-24, f"gradient {k}: {mine:.3g} vs unfused {theirs:.3g}"


@pytest.mark.parametrize("chunk_size", [1, 7, None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_error_no_worse_than_unfused(dtype, chunk_size):
    """Cross-entropy with class weights, at a size where the product's rounding shows: the fused
    gradients' error against float64 is at most the unfused path's (F.cross_entropy(F.linear(...)))
    plus fp32 rounding noise, for every chunk size."""
    x, weight, bias, target = make_head(dtype, rows=64, hidden=48, classes=40, ignore_rows=range(0, 64, 5))
    class_weight = torch.rand(40, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(dtype) + 0.1
    kwargs = dict(weight=class_weight, label_smoothing=0.05)
    ground_truth = dict(weight=class_weight.double(), label_smoothing=0.05)
    truth = run_head(reference("cross_entropy"), x.double(), weight.double(), bias.double(), target, ground_truth)
    torch_unfused = lambda x, w, t, linear_bias, **kw: F.cross_entropy(F.linear(x, w, linear_bias), t, **kw)  # noqa: E731
    unfused_errors = relative_errors(run_head(torch_unfused, x, weight, bias, target, kwargs), truth)
    fused_errors = relative_errors(run_head(fused("cross_entropy"), x, weight, bias, target, kwargs,
                                            chunk_size=chunk_size), truth)
    for k, (mine, theirs) in enumerate(zip(fused_errors, unfused_errors)):
        assert mine <= 1.1 * theirs + 4 * torch.finfo(dtype).eps, f"output {k}: {mine:.3g} vs unfused {theirs:.3g}"


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [
    dict(),
    dict(weight=True, label_smoothing=0.2),
    dict(ignore_index=None, linear_bias=False),
    dict(ignore_index=3, weight=True),
    dict(probabilities=True, label_smoothing=0.1),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_linear_cross_entropy(dtype, options, reduction):
    """Against torch.nn.functional.linear_cross_entropy run in float64; its `options` is accepted."""
    options = dict(options)
    x, weight, bias, target = make_head(dtype)
    if options.pop("linear_bias", True) is False:
        bias = torch.zeros_like(bias)
    if options.pop("weight", False):
        options["weight"] = torch.rand(V, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(dtype)
    if options.pop("probabilities", False):
        target = torch.softmax(torch.randn(N, V, generator=torch.Generator().manual_seed(4),
                                           dtype=torch.float64), dim=1).to(dtype)
    if options.get("ignore_index") == 3:
        target = target.clamp(min=0)
    out_shape = (N,) if reduction == "none" else ()
    upstream = upstream_for(out_shape, dtype)
    ground_truth = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in options.items()}
    results = run_head(lossext.linear_cross_entropy, x, weight, bias, target, options, upstream, reduction=reduction,
                       chunk_size=5, options=torch.nn.LinearCrossEntropyOptions())
    truth = run_head(F.linear_cross_entropy, x.double(), weight.double(), bias.double(),
                     target.double() if target.is_floating_point() else target, ground_truth, upstream.double(),
                     reduction=reduction)
    assert_matches(results, truth, dtype, f"{options} {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_three_dimensional_and_one_dimensional_inputs(reduction):
    x, weight, bias, target = make_head(torch.float32, rows=12)
    x3, target3 = x.reshape(3, 4, H), target.reshape(3, 4)
    kwargs = LOSSES["two_scale_cross_entropy"]()
    results = run_head(fused("two_scale_cross_entropy"), x3, weight, bias, target3, kwargs, reduction=reduction,
                       chunk_size=5)
    truth = run_head(reference("two_scale_cross_entropy"), x3.double(), weight.double(), bias.double(), target3,
                     float64_kwargs(kwargs), reduction=reduction)
    assert results[0].shape == ((3, 4) if reduction == "none" else ())
    assert results[1][0].shape == (3, 4, H)
    assert_matches(results, truth, torch.float32, reduction)
    # A single (H,) input with a 0-dim target, as F.linear_cross_entropy takes it.
    single = lossext.linear_cross_entropy(x[0], weight, target[2], reduction=reduction)
    expected = F.linear_cross_entropy(x[0], weight, target[2], reduction=reduction)
    assert single.shape == expected.shape
    assert_close(single, expected, torch.float32)


LAYOUTS = {
    "input_transposed": (lambda x: x.t().contiguous().t(), lambda w: w),
    "input_row_slice": (lambda x: torch.stack([x, x], dim=1)[:, 0], lambda w: w),
    "input_column_slice": (lambda x: torch.stack([x, x], dim=2).reshape(N, 2 * H)[:, ::2], lambda w: w),
    "weight_transposed": (lambda x: x, lambda w: w.t().contiguous().t()),
    "weight_column_slice": (lambda x: x, lambda w: torch.stack([w, w], dim=2).reshape(V, 2 * H)[:, ::2]),
    "weight_row_slice": (lambda x: x, lambda w: torch.cat([w, w], dim=1).reshape(2 * V, H)[::2]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_non_contiguous_input_and_weight(layout):
    x, weight, bias, target = make_head(torch.float32)
    arrange_x, arrange_w = LAYOUTS[layout]
    x_view, weight_view = arrange_x(x), arrange_w(weight)
    assert torch.equal(x_view, x) and torch.equal(weight_view, weight)
    assert not (x_view.is_contiguous() and weight_view.is_contiguous())
    out = lossext.linear_cross_entropy(x_view, weight_view, target, linear_bias=bias, chunk_size=4)
    expected = lossext.linear_cross_entropy(x, weight, target, linear_bias=bias, chunk_size=4)
    assert torch.equal(out, expected) or torch.allclose(out, expected, rtol=1e-6, atol=0)
    results = run_head(lossext.linear_cross_entropy, x_view, weight_view, bias, target, {}, chunk_size=4)
    truth = run_head(reference("cross_entropy"), x.double(), weight.double(), bias.double(), target, {})
    assert_matches(results, truth, torch.float32, layout)


@pytest.mark.parametrize("chunk", [dict(chunk_size=1), dict(chunk_size=7), dict(chunk_size=N), dict(),
                                   dict(chunk_bytes=3 * V * 4)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_chunking_and_ignored_chunks(chunk, reduction):
    """Rows 0-6 ignored: with chunk_size 7 the first chunk holds no counted row (the CPU leaves them out of
    the products altogether); every chunking gives the reference's values and gradients."""
    x, weight, bias, target = make_head(torch.float32, ignore_rows=range(7))
    class_weight = torch.rand(V, generator=torch.Generator().manual_seed(1)) + 0.5
    kwargs = dict(weight=class_weight, label_smoothing=0.1)
    out_shape = (N,) if reduction == "none" else ()
    upstream = upstream_for(out_shape, torch.float32)
    results = run_head(fused("cross_entropy"), x, weight, bias, target, kwargs, upstream, reduction=reduction,
                       **chunk)
    truth = run_head(reference("cross_entropy"), x.double(), weight.double(), bias.double(), target,
                     dict(weight=class_weight.double(), label_smoothing=0.1), upstream.double(), reduction=reduction)
    assert_matches(results, truth, torch.float32, f"{chunk} {reduction}")
    assert torch.count_nonzero(results[1][0][:7]) == 0, "ignored rows must get a zero input gradient"


def test_ignored_rows_cost_no_products():
    """On CPU the logits product runs over the counted rows only (read from the profiler's shapes)."""
    x, weight, bias, target = make_head(torch.float32, ignore_rows=range(0, N, 2))
    counted = int((target != -100).sum())
    x.requires_grad_(True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as profile:
        lossext.linear_cross_entropy(x, weight, target, chunk_size=4).backward()
    # The logits products: (rows x H) @ (H x V) per chunk.
    logits_products = [event.input_shapes[0][0] for event in profile.events()
                       if event.name == "aten::mm" and event.input_shapes[1] == [H, V]]
    assert logits_products and sum(logits_products) == counted, (logits_products, counted)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_ignored_batch(reduction):
    x, weight, bias, target = make_head(torch.float32, ignore_rows=range(N))
    results = run_head(lossext.linear_cross_entropy, x, weight, bias, target, {}, reduction=reduction)
    truth = run_head(F.linear_cross_entropy, x, weight, bias, target, {}, reduction=reduction)
    torch.testing.assert_close(results[0], truth[0], equal_nan=True)  # mean: NaN (0/0), as torch
    for g, ref in zip(results[1], truth[1]):
        assert torch.count_nonzero(g) == 0 and torch.equal(g, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_bitwise_reproducible_across_runs_and_threads(dtype):
    """For a fixed chunk size every output is bitwise the same run after run and with 1 or 2 threads:
    rows are independent in the loss kernel and every sum over rows (weight and bias gradients, the
    reduction) runs in chunk order. Different chunk sizes change the products' blocking (BLAS picks
    kernels by shape) and the order of the weight gradient's sum over chunks, so they agree only to
    rounding (test_chunking_and_ignored_chunks)."""
    x, weight, bias, target = make_head(dtype, rows=40, hidden=16, classes=24, ignore_rows=(5,))
    kwargs = LOSSES["two_scale_cross_entropy"]()
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2, 1):
            torch.set_num_threads(count)
            results.append(run_head(fused("two_scale_cross_entropy"), x, weight, bias, target, kwargs, chunk_size=7))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert torch.equal(other[0], results[0][0])
        assert all(torch.equal(a, b) for a, b in zip(other[1], results[0][1]))


def test_scratch_buffers_are_reused_and_released():
    """The CPU head leases its logits buffer (and, for bf16, the fp32 weight-gradient sum) from a pool kept
    between calls (csrc/ops/workspace.h): a buffer left holding another call's values (a larger vocabulary, a
    concurrent thread) must not leak into a result, the pool must not grow with repeated calls, and
    lossext.empty_cache() must free it."""
    import threading

    lossext.empty_cache()
    assert lossext.cached_bytes() == 0
    small = make_head(torch.bfloat16, rows=40, hidden=16, classes=24, ignore_rows=(5,))
    large = make_head(torch.bfloat16, rows=40, hidden=16, classes=96, ignore_rows=(), seed=1)
    kwargs = LOSSES["cross_entropy"]()

    def step(head):
        return run_head(fused("cross_entropy"), *head, kwargs, chunk_size=7)

    first = step(small)
    held = lossext.cached_bytes()
    # The logits (7 x 24 bf16) and the fp32 weight-gradient sum (24 x 16) went back to the pool.
    assert held >= 7 * 24 * 2 + 24 * 16 * 4
    assert held == (step(small), lossext.cached_bytes())[1]
    step(large)
    results = {}

    def worker(name, head):
        results[name] = step(head)

    threads = [threading.Thread(target=worker, args=(k, head)) for k, head in enumerate([small, large] * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for again in (step(small), results[0], results[2]):
        assert torch.equal(again[0], first[0])
        assert all(torch.equal(a, b) for a, b in zip(again[1], first[1]))
    assert torch.equal(results[1][0], results[3][0])
    lossext.empty_cache()
    assert lossext.cached_bytes() == 0


def test_upstream_scaling_and_recompute():
    """A non-unit upstream gradient scales the gradients finished in the forward (exactly: one
    product each), and recompute=True (gradients recomputed in backward) gives the same values."""
    x, weight, bias, target = make_head(torch.float32)
    kwargs = two_scale_kwargs(torch.float32)
    unit = run_head(fused("two_scale_cross_entropy"), x, weight, bias, target, kwargs, chunk_size=5)
    upstream = torch.tensor(1.7)
    scaled = run_head(fused("two_scale_cross_entropy"), x, weight, bias, target, kwargs, upstream, chunk_size=5)
    for g, g1 in zip(scaled[1], unit[1]):
        assert torch.equal(g, g1 * upstream.to(g1.dtype))
    recomputed = run_head(fused("two_scale_cross_entropy"), x, weight, bias, target, kwargs, upstream, chunk_size=5,
                          recompute=True)
    assert torch.equal(recomputed[0], scaled[0])
    for g, ref in zip(recomputed[1], scaled[1]):
        torch.testing.assert_close(g, ref, rtol=1e-6, atol=1e-7)


def test_partial_gradients_and_no_grad():
    """Only the tensors that require grad get one (a frozen weight skips its product), and without
    grad the loss is the same."""
    x, weight, bias, target = make_head(torch.float32)
    expected = lossext.linear_cross_entropy(x, weight, target, linear_bias=bias)
    with torch.no_grad():
        assert torch.equal(lossext.linear_cross_entropy(x, weight, target, linear_bias=bias), expected)
    x_leaf = x.clone().requires_grad_(True)
    loss = lossext.linear_cross_entropy(x_leaf, weight, target, linear_bias=bias)
    (grad,) = torch.autograd.grad(loss, x_leaf)
    reference_grad = run_head(lossext.linear_cross_entropy, x, weight, bias, target, {})[1][0]
    assert torch.equal(loss.detach(), expected) and torch.equal(grad, reference_grad)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("loss", ["cross_entropy", "hinge", "alpha_loss", "two_scale_cross_entropy"])
def test_gradcheck_float64(loss, reduction):
    x, weight, bias, target = make_head(torch.float64, rows=5, hidden=3, classes=4, ignore_rows=(2,))
    kwargs = LOSSES[loss]()
    if loss == "cross_entropy":
        kwargs["weight"] = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    scales = tensor_arguments(kwargs)
    names = [k for k, v in kwargs.items() if isinstance(v, torch.Tensor) and v.requires_grad]

    def head(x, weight, bias, *tensors):
        return lossext.linear_loss(loss, x, weight, target, linear_bias=bias, reduction=reduction, chunk_size=2,
                                   **{**kwargs, **dict(zip(names, tensors))})

    inputs = [t.clone().requires_grad_(True) for t in (x, weight, bias)] + scales
    assert torch.autograd.gradcheck(head, inputs)


@pytest.mark.parametrize("loss", ["cross_entropy", "two_scale_cross_entropy"])
def test_opcheck(loss):
    x, weight, bias, target = make_head(torch.float32)
    x.requires_grad_(True)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    if loss == "two_scale_cross_entropy":
        params, tensor_params = [0.5], torch.tensor([1.5, 4.0, 2.0], requires_grad=True)
    else:
        params, tensor_params = [0.1, 0.01, 5.0], None  # label_smoothing, z_loss, logit_softcap
    common = (None, params, tensor_params, -100)
    forward = getattr(torch.ops.lossext, f"{loss}_linear_forward").default
    backward = getattr(torch.ops.lossext, f"{loss}_linear_backward").default
    for reduction, grad_mask in ((1, [True, True, True, tensor_params is not None]), (0, [False] * 4)):
        torch.library.opcheck(forward, (x, weight, bias, target, *common, reduction, 5, None, grad_mask))
    detached = (None, params, None if tensor_params is None else tensor_params.detach(), -100)
    torch.library.opcheck(backward, (torch.rand(N), x.detach(), weight.detach(), bias.detach(), target, *detached, 0,
                                     None, 4 * V * 4, [True, True, True, tensor_params is not None]))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_torch_compile_fullgraph_with_ignore_index(reduction):
    torch._dynamo.reset()
    torch.manual_seed(0)
    head = lossext.nn.LinearCrossEntropyLoss(H, V, bias=True, ignore_index=7, reduction=reduction)
    body = torch.nn.Linear(5, H)
    x = torch.randn(N, 5)
    target = torch.randint(0, V, (N,))
    target[::3] = 7

    def step(x, target):
        return head(torch.tanh(body(x)), target).sum()

    def gradients(fn):
        for p in list(head.parameters()) + list(body.parameters()):
            p.grad = None
        loss = fn(x, target)
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in list(head.parameters()) + list(body.parameters())]

    eager = gradients(step)
    compiled = gradients(torch.compile(step, fullgraph=True, backend="aot_eager"))
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert torch.count_nonzero(eager[0]) == 1


def test_modules():
    torch.manual_seed(0)
    ours = lossext.nn.LinearCrossEntropyLoss(H, V, bias=True, label_smoothing=0.1, weight=torch.rand(V) + 0.5)
    theirs = torch.nn.LinearCrossEntropyLoss(H, V, bias=True, label_smoothing=0.1, weight=ours.weight.clone())
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    theirs.load_state_dict(ours.state_dict())
    x, _, _, target = make_head(torch.float32)
    torch.testing.assert_close(ours(x, target), theirs(x, target))
    with pytest.raises(NotImplementedError, match="out_features"):
        lossext.nn.LinearCrossEntropyLoss(H, V, out_features=(2,))

    # Learnable two-scale scales are trained through LinearLoss.
    head = lossext.nn.LinearLoss(H, V, "two_scale_cross_entropy", r1=torch.nn.Parameter(torch.tensor(1.5)),
                                 r2=torch.nn.Parameter(torch.tensor(4.0)), eta=0.5, reduction="sum", chunk_size=4)
    assert {name for name, _ in head.named_parameters()} == {"linear.weight", "r1", "r2"}
    head(x, target).backward()
    results = (None, (head.linear.weight.grad, head.r1.grad, head.r2.grad))
    w, r1, r2 = (t.detach().double().requires_grad_(True) for t in (head.linear.weight, head.r1, head.r2))
    expected = lossext.reference.linear_loss("two_scale_cross_entropy", x.double(), w, target, r1=r1, r2=r2, eta=0.5,
                                             reduction="sum")
    truth = (None, torch.autograd.grad(expected, (w, r1, r2)))
    for g, ref in zip(results[1], truth[1]):
        assert_close(g, ref, torch.float32, scale=ref.abs().max().item())


def test_reference_backend_is_the_fallback():
    x, weight, bias, target = make_head(torch.float32)
    lossext.set_backend("reference")
    try:
        out = lossext.linear_loss("hinge", x, weight, target, linear_bias=bias, p=2.0)
    finally:
        lossext.set_backend(None)
    assert torch.equal(out, lossext.reference.linear_loss("hinge", x, weight, target, linear_bias=bias, p=2.0))


@pytest.mark.parametrize("call, error, match", [
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w[:, :4], t), RuntimeError, "linear_weight must have shape"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t, linear_bias=b[:5]), RuntimeError, "linear_bias"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w.double(), t), RuntimeError, "linear_weight must have the"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t, linear_bias=b.half()), RuntimeError, "linear_bias"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w.to("meta"), t), RuntimeError, "linear_weight must be on"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t.to("meta")), RuntimeError, "target must be on"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t[:5]), ValueError, "target"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t.float()), RuntimeError, "target must hold"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t, weight=torch.ones(V - 1)), RuntimeError, "weight"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t.clamp(min=0) + V), IndexError, "out of bounds"),
    (lambda x, w, b, t: lossext.linear_loss("softmax", x, w, t), ValueError, "loss must be one of"),
    (lambda x, w, b, t: lossext.linear_loss("hinge", x, w, t, q=3), TypeError, "q"),
    (lambda x, w, b, t: lossext.linear_loss("hinge", x, w, t, p=0.5), ValueError, "p must be"),
    (lambda x, w, b, t: lossext.linear_loss("two_scale_cross_entropy", x, w, t, r1=1.0, eta=0.1), TypeError, "r2"),
    (lambda x, w, b, t: lossext.linear_cross_entropy(x, w, t, chunk_size=0), RuntimeError, "chunk_rows"),
    # The op's own checks, for callers of torch.ops.lossext directly.
    (lambda x, w, b, t: torch.ops.lossext.hinge_linear_forward(x, w[:, :4], None, t, None, [1.0, 0.5], None, -100,
                                                               1, None, None, [False] * 4),
     RuntimeError, "linear_weight must have shape"),
    (lambda x, w, b, t: torch.ops.lossext.hinge_linear_forward(x, w, b[:3], t, None, [1.0, 0.5], None, -100, 1,
                                                               None, None, [False] * 4),
     RuntimeError, "linear_bias must have shape"),
])
def test_bad_input_names_the_argument(call, error, match):
    x, weight, bias, target = make_head(torch.float32)
    with pytest.raises(error, match=match):
        call(x, weight, bias, target)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk", [dict(chunk_size=1), dict(chunk_size=7), dict()])
def test_evaluation_without_logits(dtype, chunk):
    """linear_evaluate's per-row cross-entropy, log-sum-exp, prediction and target rank equal those of
    the materialised logits; its top-k accuracies equal lossext.metrics' on them."""
    x, weight, bias, target = make_head(dtype, rows=12, hidden=8, classes=30)
    x3, target3 = x.reshape(3, 4, 8), target.reshape(3, 4)
    result = lossext.linear_evaluate(x3, weight, target3, linear_bias=bias, **chunk)
    expected = lossext.reference.linear_evaluate(x3, weight, target3, linear_bias=bias)
    assert all(r.shape == (3, 4) for r in result)
    for got, want in zip(result, expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    logits = F.linear(x, weight, bias).float()
    for k in (1, 3, 30):
        torch.testing.assert_close(result.top_k_accuracy(k), lossext.metrics.top_k_accuracy(logits, target, k))
    if dtype == torch.float32:
        loss = lossext.linear_cross_entropy(x3, weight, target3, linear_bias=bias, reduction="none")
        torch.testing.assert_close(result.loss, loss, rtol=1e-5, atol=1e-6)
    compiled = torch.compile(lambda *a: lossext.linear_evaluate(*a, linear_bias=bias, **chunk), fullgraph=True,
                             backend="aot_eager")
    for got, want in zip(compiled(x3, weight, target3), result):
        assert torch.equal(got, want)


def test_evaluation_opcheck_and_bad_target():
    x, weight, bias, target = make_head(torch.float32)
    torch.library.opcheck(torch.ops.lossext.linear_cross_entropy_evaluate.default,
                          (x, weight, bias, target, -100, 4, None))
    with pytest.raises(RuntimeError, match="out of bounds"):
        lossext.linear_evaluate(x, weight, target.clamp(min=0) + V)
