"""Activations: forward and gradients against torch.nn.functional and the reference, both backends, over the
op-info table (lossext/testing/activation_info.py).

Tolerances are the "activation" rows of tests/conftest.py's table. Gradients computed from a saved
output (sigmoid, tanh, softmax) also carry the output's rounding: conftest.output_rounding_atol,
with the entry's output_sensitivity. The truth is always the float64 function (torch.nn.functional or
the reference) of the rounded input.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import lossext
from conftest import DTYPES, assert_close, output_rounding_atol
from lossext.testing.activation_info import ACTIVATIONS, of_kind

requires_extension = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")

ELEMENTWISE = [pytest.param(activation, id=activation.name) for activation in of_kind("elementwise")]
CHANNEL = [pytest.param(activation, id=activation.name) for activation in of_kind("channel")]
(SOFTMAX,) = of_kind("softmax")


def sample(shape, dtype, device, seed=0, scale=3.0, away_from=()):
    """Normal samples times `scale`, nudged at least 1e-2 away from the given kinks."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    for kink in away_from:
        close = (x - kink).abs() < 1e-2
        x = torch.where(close, x + 2e-2 * torch.sign(x - kink + 1e-12), x)
    return x.to(dtype).to(device)


def forward_backward(fn, x, g, *params):
    x = x.detach().clone().requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in params]
    y = fn(x, *params)
    y.backward(g)
    return (y.detach(), x.grad) + tuple(p.grad for p in params)


def upcast_reference(fn, x, g, *params):
    """`fn` in float64 on the (already rounded) inputs, cast back: the ground truth for half types."""
    outs = forward_backward(fn, x.double(), g.double(), *[p.double() for p in params])
    return tuple(o.to(x.dtype) for o in outs)


def check_forward_and_gradient(activation, y, dx, expected_y, expected_dx, dtype, g, what):
    """y and dx against the truth with the entry's tolerance; dx's widened by the saved output's rounding."""
    assert_close(y, expected_y, dtype, family=activation.tolerance, msg=f"{what} forward")
    assert_close(dx, expected_dx, dtype, family=activation.tolerance, msg=f"{what} gradient",
                 extra_atol=output_rounding_atol(activation.output_sensitivity, dtype, g))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_elementwise_matches_torch_and_reference(backend, activation, dtype, device):
    x = sample((37, 45), dtype, device, away_from=activation.kinks)  # 1665 elements: 8-lane groups and a tail
    g = sample((37, 45), dtype, device, seed=1, scale=1.0)
    y, dx = forward_backward(activation.function, x, g)
    assert y.dtype == dtype and dx.dtype == dtype
    for label, expected_fn in (("torch", activation.torch_function), ("reference", activation.reference)):
        # The truth is the float64 function of the (rounded) input: PyTorch's own float32 and half
        # kernels have errors of their own (1 - tanh^2 where tanh rounds to 1, 1 + erf in the tail).
        expected_y, expected_dx = upcast_reference(expected_fn, x, g)
        check_forward_and_gradient(activation, y, dx, expected_y, expected_dx, dtype, g,
                                   f"{activation.name} vs {label}")


@requires_extension
@pytest.mark.parametrize("streamed", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_elementwise_streaming_stores(monkeypatch, activation, dtype, streamed):
    # Light activations' float32 and bfloat16 outputs above the last-level cache are written upwards
    # with streaming stores, everything else downwards with ordinary ones (activation.h,
    # cpu/activation_driver.h); LOSSEXT_STREAMING_STORES_ABOVE=0 forces streaming for every size,
    # a huge value forbids it (other cases ignore it). 1665 elements end in a partial vector;
    # 300,007 split into ranges on every thread, whose bfloat16 ranges may start mid-line.
    monkeypatch.setenv("LOSSEXT_STREAMING_STORES_ABOVE", "0" if streamed else str(1 << 62))
    label = "streamed" if streamed else "not streamed"
    for shape in ((37, 45), (300_007,)):
        x = sample(shape, dtype, "cpu", away_from=activation.kinks)
        g = sample(shape, dtype, "cpu", seed=1, scale=1.0)
        y, dx = forward_backward(activation.function, x, g)
        expected_y, expected_dx = upcast_reference(activation.torch_function, x, g)
        check_forward_and_gradient(activation, y, dx, expected_y, expected_dx, dtype, g,
                                   f"{activation.name}, {label}, {shape}")


SPECIALS = [float("-inf"), -100.0, -3.0, -0.0, 0.0, 3.0, 100.0, float("inf"), float("nan")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_elementwise_special_values(backend, activation, dtype, device):
    """+-inf and NaN (and values where exp overflows) give what torch.nn.functional gives in float64,
    NaN where that is NaN (x * sigmoid(x) at x = -inf is -inf * 0). Repeated 8 times (72 elements), so
    each value also falls in whole vectors, in even and odd positions (the CPU driver widens bfloat16
    in even/odd lanes), besides a partial vector at the end."""
    x = torch.tensor(SPECIALS * 8, dtype=dtype, device=device)
    g = torch.ones_like(x)
    y, dx = forward_backward(activation.function, x, g)
    expected_y, expected_dx = upcast_reference(activation.torch_function, x, g)
    # PyTorch's elu_backward and hardtanh_backward treat NaN differently in their vector loops (NaN
    # gradient; zero) and their scalar remainders (the positive slope; the gradient passed through).
    # Ours give the vector loops' answer wherever the NaN falls (elu.h, relu_family.h).
    if activation.op in ("elu", "selu"):
        expected_dx[x.isnan()] = float("nan")
    if activation.op == "hardtanh":
        expected_dx[x.isnan()] = 0.0
    check_forward_and_gradient(activation, y, dx, expected_y, expected_dx, dtype, g,
                               f"{activation.name} at {SPECIALS}")


@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_elementwise_strided_and_empty(backend, activation, device):
    base = sample((6, 10, 7, 5), torch.float32, device, away_from=activation.kinks)
    cases = {
        "sliced": base[:, ::3, :, 1:],  # not dense: copied
        "transposed": base.transpose(1, 3),  # dense, permuted: walked in memory order
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "empty": base[:0],
        "empty_inner": base[:, :, :0],
        "zero_dim": base[0, 0, 0, 0],
    }
    for label, x in cases.items():
        g = sample(x.shape, torch.float32, device, seed=2).transpose(0, -1).contiguous().transpose(0, -1) \
            if x.dim() else torch.tensor(0.5, device=device)
        y, dx = forward_backward(activation.function, x, g)
        expected_y, expected_dx = upcast_reference(activation.torch_function, x, g)
        assert y.shape == x.shape and dx.shape == x.shape
        if backend == "extension":  # the kernels return torch.empty_like's layout (the fake kernels' too)
            assert y.stride() == torch.empty_like(x).stride()
        check_forward_and_gradient(activation, y, dx, expected_y, expected_dx, torch.float32, g,
                                   f"{activation.name}, {label}")


@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_elementwise_gradcheck(backend, activation):
    x = sample((4, 9), torch.float64, "cpu", away_from=activation.kinks).requires_grad_()
    assert torch.autograd.gradcheck(activation.function, (x,))


@pytest.mark.parametrize("activation", ELEMENTWISE)
def test_elementwise_compile_fullgraph(backend, activation):
    torch._dynamo.reset()
    compiled = torch.compile(activation.function, fullgraph=True)
    x = sample((5, 19), torch.float32, "cpu", away_from=activation.kinks)
    g = sample((5, 19), torch.float32, "cpu", seed=3)
    for actual, expected in zip(forward_backward(compiled, x, g), forward_backward(activation.function, x, g)):
        torch.testing.assert_close(actual, expected)


# ---- What is saved for backward. ----


def saved_kinds(fn, x, *params):
    kinds = []

    def pack(t):
        kinds.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x, *params)
    pointers = {x.data_ptr(): "input", y.data_ptr(): "output"}
    pointers.update({p.data_ptr(): "parameter" for p in params})
    return [pointers.get(t.data_ptr(), "other") for t in kinds]


@requires_extension
@pytest.mark.parametrize("activation", [pytest.param(a, id=a.name) for a in ACTIVATIONS])
def test_saves_what_the_table_says(activation):
    # One tensor for the elementwise ones; the input and the parameter for PReLU and Swish.
    x = sample((3, 4, 5), torch.float32, "cpu").requires_grad_()
    parameter = [torch.rand(4, requires_grad=True)] if activation.kind == "channel" else []
    dim = dict(dim=1) if activation.kind == "softmax" else {}
    assert saved_kinds(lambda t, *p: activation.function(t, *p, **dim), x, *parameter) == list(activation.saves)


# ---- PReLU and Swish: per-channel parameters. ----

CHANNEL_SHAPES = {
    "rows": (29, 13),  # (N, C): the parameter varies along the contiguous dim (13: a tail of 5)
    "images": (3, 6, 5, 7),  # (N, C, H, W): runs of 35 elements share a parameter
    "vector": (41,),  # 1-D: one parameter only
}
CHANNEL_LAYOUTS = [pytest.param(layout, per_channel, id=f"{layout}-{'per_channel' if per_channel else 'one_value'}")
                   for layout, shape in CHANNEL_SHAPES.items() for per_channel in (False, True)
                   if len(shape) > 1 or not per_channel]  # a 1-D input has one channel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout,per_channel", CHANNEL_LAYOUTS)
@pytest.mark.parametrize("activation", CHANNEL)
def test_channel_ops_match_torch_and_reference(backend, activation, per_channel, layout, dtype, device):
    shape = CHANNEL_SHAPES[layout]
    channels = shape[1] if per_channel else 1
    x = sample(shape, dtype, device, away_from=activation.kinks)
    g = sample(shape, dtype, device, seed=1, scale=1.0)
    parameter = (torch.rand(channels, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.25)
    parameter = parameter.to(dtype).to(device)
    y, dx, dp = forward_backward(activation.function, x, g, parameter)
    assert dp.shape == parameter.shape and dp.dtype == dtype
    for label, expected_fn in (("torch", activation.torch_function), ("reference", activation.reference)):
        expected = upcast_reference(expected_fn, x, g, parameter)
        check_forward_and_gradient(activation, y, dx, expected[0], expected[1], dtype, g,
                                   f"{activation.name} vs {label}")
        # The parameter's gradient is a sum over up to 377 elements: its rounding error grows with
        # the count (fp32 accumulation for half types, then one rounding to the dtype).
        assert_close(dp, expected[2], dtype, scale=x.numel() / channels, family=activation.tolerance,
                     msg=f"{activation.name} parameter gradient vs {label}")


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("activation", CHANNEL)
def test_channel_ops_gradcheck(backend, activation, per_channel):
    x = sample((3, 4, 5), torch.float64, "cpu", away_from=activation.kinks).requires_grad_()
    parameter = (torch.rand(4 if per_channel else 1, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(activation.function, (x, parameter))


@pytest.mark.parametrize("activation", CHANNEL)
def test_channel_ops_compile_fullgraph(backend, activation):
    torch._dynamo.reset()
    compiled = torch.compile(activation.function, fullgraph=True)
    x = sample((4, 5, 6), torch.float32, "cpu", away_from=activation.kinks)
    g = sample((4, 5, 6), torch.float32, "cpu", seed=1)
    parameter = torch.rand(5) + 0.5
    for actual, expected in zip(forward_backward(compiled, x, g, parameter),
                                forward_backward(activation.function, x, g, parameter)):
        torch.testing.assert_close(actual, expected)


# ---- Softmax along every dim. ----

SOFTMAX_DIMS = [0, 1, 2, -1, -2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", SOFTMAX_DIMS)
def test_softmax_every_dim(backend, dim, dtype, device):
    x = sample((5, 19, 11), dtype, device)  # 19 and 11: 8-lane groups and tails along rows and columns
    g = sample((5, 19, 11), dtype, device, seed=1, scale=1.0)
    y, dx = forward_backward(lambda t: SOFTMAX.function(t, dim=dim), x, g)
    for label, fn in (("torch", SOFTMAX.torch_function), ("reference", SOFTMAX.reference)):
        expected_y, expected_dx = upcast_reference(lambda t: fn(t, dim=dim), x, g)
        check_forward_and_gradient(SOFTMAX, y, dx, expected_y, expected_dx, dtype, g, f"softmax(dim={dim}) vs {label}")


@requires_extension
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_streaming_stores(monkeypatch, dtype):
    # float32 softmax rows above the cache are written with streaming stores, forward and backward;
    # LOSSEXT_STREAMING_STORES_ABOVE=0 forces them. Rows of 37 start at every alignment (single
    # elements before the first aligned vector), rows of 64 are aligned, 2000 rows span the threads.
    monkeypatch.setenv("LOSSEXT_STREAMING_STORES_ABOVE", "0")
    for shape in ((2000, 37), (40, 64)):
        x = sample(shape, dtype, "cpu")
        g = sample(shape, dtype, "cpu", seed=1, scale=1.0)
        y, dx = forward_backward(lambda t: SOFTMAX.function(t, dim=-1), x, g)
        expected_y, expected_dx = upcast_reference(lambda t: SOFTMAX.torch_function(t, dim=-1), x, g)
        check_forward_and_gradient(SOFTMAX, y, dx, expected_y, expected_dx, dtype, g, f"softmax streamed, {shape}")


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_gradcheck_and_compile(backend, dim):
    x = sample((3, 4, 5), torch.float64, "cpu").requires_grad_()

    def softmax(t):
        return SOFTMAX.function(t, dim=dim)

    assert torch.autograd.gradcheck(softmax, (x,))
    torch._dynamo.reset()
    compiled = torch.compile(softmax, fullgraph=True)
    g = sample((3, 4, 5), torch.float64, "cpu", seed=1)
    for actual, expected in zip(forward_backward(compiled, x, g), forward_backward(softmax, x, g)):
        torch.testing.assert_close(actual, expected)


# ---- opcheck on every op. ----


def opcheck_cases(activation):
    """(op, args) for the entry's forward (contiguous and transposed input) and backward ops; the
    forward inputs take gradients, to check the ops' autograd registration too."""
    x = sample((4, 6, 5), torch.float32, "cpu", away_from=(0.0,))
    g = sample((4, 6, 5), torch.float32, "cpu", seed=1)
    saved = x.sigmoid() if activation.saved_is_output else x
    forward = getattr(torch.ops.lossext, f"{activation.op}_forward").default
    backward = getattr(torch.ops.lossext, f"{activation.op}_backward").default
    if activation.kind == "channel":
        # A parameter per channel (dim 1, 6 channels) taking a gradient, and one shared value not taking one.
        return [(forward, (x, parameter)) for parameter in (torch.rand(6) + 0.5, torch.tensor(0.7))] + [
            (backward, (g, x, torch.rand(6) + 0.5, True)), (backward, (g, x, torch.tensor(0.7), False))]
    if activation.kind == "softmax":
        return [(forward, (x, dim)) for dim in SOFTMAX_DIMS] + [(forward, (x.transpose(0, 2), 1))] + [
            (backward, (g, saved, dim)) for dim in SOFTMAX_DIMS]
    backward_flag = ((activation.saved_is_output,) if "saved_is_output" in
                     [argument.name for argument in backward._schema.arguments] else ())
    return [(forward, (input, *activation.op_args)) for input in (x, x.transpose(0, 2))] + [
        (backward, (g, saved, *activation.op_args, *backward_flag))]


@requires_extension
@pytest.mark.parametrize("activation", [pytest.param(a, id=a.name) for a in ACTIVATIONS])
def test_opcheck(activation):
    for op, args in opcheck_cases(activation):
        if op._schema.name.endswith("_forward"):
            args = tuple(a.clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args)
        torch.library.opcheck(op, args)


# ---- What is particular to one activation. ----


def test_softmax_special_and_empty_and_strided(backend):
    rows = torch.tensor([[0.0, 1.0, float("-inf")], [float("-inf")] * 3, [float("nan"), 0.0, 1.0],
                         [float("inf"), 0.0, 1.0], [1e30, -1e30, 0.0]])
    for dim in (0, 1):
        torch.testing.assert_close(lossext.softmax(rows, dim), F.softmax(rows, dim), equal_nan=True)
    for shape, dim in (((0, 7), 1), ((0, 7), 0), ((4, 0), 1)):
        x = torch.empty(shape, requires_grad=True)
        y = lossext.softmax(x, dim)
        y.sum().backward()
        assert y.shape == shape and x.grad.shape == shape
    x = sample((6, 9, 4), torch.float32, "cpu").transpose(0, 2)
    torch.testing.assert_close(lossext.softmax(x, 1), F.softmax(x, 1))
    torch.testing.assert_close(lossext.softmax(torch.tensor(2.0), 0), torch.tensor(1.0))
    torch.testing.assert_close(lossext.softmax(rows, 1, dtype=torch.float64), F.softmax(rows, 1, dtype=torch.float64),
                               equal_nan=True)


# ---- PReLU and Swish: float and one-element beta, determinism, modules. ----


def test_swish_float_beta(backend):
    x = sample((7, 11), torch.float64, "cpu")
    torch.testing.assert_close(lossext.swish(x, 1.0), F.silu(x))
    torch.testing.assert_close(lossext.swish(x, 1.7), x * torch.sigmoid(1.7 * x))
    xg = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: lossext.swish(t, 0.6), (xg,))


def test_swish_scalar_tensor_beta_gradient(backend):
    x = sample((4, 3, 10), torch.float64, "cpu")
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    lossext.swish(x, beta).sum().backward()
    # d/dbeta sum x sigmoid(beta x) = sum x^2 s (1 - s)
    s = torch.sigmoid(0.8 * x)
    torch.testing.assert_close(beta.grad, (x * x * s * (1 - s)).sum())


@requires_extension
@pytest.mark.parametrize("shape,channels", [((5, 16, 40, 41), 16), ((5, 16, 40, 41), 1), ((3000, 50), 50)])
@pytest.mark.parametrize("name", ["prelu", "swish"])
def test_parameter_gradient_is_deterministic_across_thread_counts(name, shape, channels):
    """The parameter's gradient is summed in chunks fixed by the shape, then in chunk order, so it is
    bitwise the same whatever the number of threads (131200 and 150000 elements: several chunks)."""
    x = sample(shape, torch.float32, "cpu")
    g = sample(shape, torch.float32, "cpu", seed=1)
    parameter = torch.rand(channels) + 0.5
    op = torch.ops.lossext.prelu_backward if name == "prelu" else torch.ops.lossext.swish_backward
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = op(g, x, parameter, True)[1]
        torch.set_num_threads(max(2, threads))
        multi = op(g, x, parameter, True)[1]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, multi)


def test_channel_modules(backend):
    torch.manual_seed(0)
    ours, theirs = lossext.nn.PReLU(6), torch.nn.PReLU(6)
    x = sample((4, 6, 3), torch.float32, "cpu", away_from=(0.0,))
    torch.testing.assert_close(ours(x), theirs(x))
    ours(x).sum().backward()
    theirs(x).sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    swish = lossext.nn.Swish(6)
    torch.testing.assert_close(swish(x), F.silu(x))  # beta initialised to 1
    swish(x).square().sum().backward()
    assert swish.beta.grad.shape == (6,) and swish.beta.grad.abs().sum() > 0


# ---- Dense-grid accuracy of the CPU vector math (float32). ----


@requires_extension
def test_dense_grid_accuracy():
    """Every float32 in steps of ~1.4e-6 over [-12, 12] against float64 truth: the vector tanh, erfc
    (through GELU), expm1 (through ELU) and exp (sigmoid, SiLU) stay within a few ulp."""
    x = torch.linspace(-12, 12, (1 << 24) + 1, dtype=torch.float32)
    xd = x.double()
    ops = torch.ops.lossext

    def max_relative_error(actual, truth, floor):
        keep = truth.abs() > floor
        return ((actual.double() - truth) / truth)[keep].abs().max().item()

    eps = 2.0**-23
    assert max_relative_error(ops.tanh_forward(x), torch.tanh(xd), 0) < 3 * eps
    assert max_relative_error(ops.sigmoid_forward(x), torch.sigmoid(xd), 1e-37) < 3 * eps
    assert max_relative_error(ops.elu_forward(x[x <= 0], 1.0), torch.expm1(xd[x <= 0]), 0) < 3 * eps
    assert max_relative_error(ops.silu_forward(x), xd * torch.sigmoid(xd), 1e-37) < 4 * eps
    # GELU = x Phi(x), Phi = erfc(-x / sqrt 2) / 2 in float64 (F.gelu's 1 + erf underflows for x < -8).
    truth = xd * 0.5 * torch.special.erfc(-xd / math.sqrt(2))
    # erfc's fit is good to 1.2e-7; in float32, z^2 in exp(-z^2 ...) is rounded, adding up to ulp(z^2)
    # relative error in the tail: x in [-6, 0) reaches z^2 = 18, ulp 2e-6.
    assert max_relative_error(ops.gelu_forward(x[x >= 0], "none"), truth[x >= 0], 0) < 4 * eps
    assert max_relative_error(ops.gelu_forward(x[(x < 0) & (x > -6)], "none"), truth[(x < 0) & (x > -6)], 0) < 4e-6


# ---- Bad input: a clear exception naming the argument. ----


@pytest.mark.parametrize("name", ["prelu", "swish"])
def test_bad_parameter(backend, name):
    fn = lossext.prelu if name == "prelu" else lossext.swish
    argument = "weight" if name == "prelu" else "beta"
    x = torch.randn(2, 3, 4)
    with pytest.raises(TypeError, match=argument):
        fn(x, torch.ones(3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=argument):
        fn(x, torch.ones(4))
    with pytest.raises(RuntimeError, match=argument):
        fn(x, torch.ones(3, 1))
    with pytest.raises(RuntimeError, match=argument):
        fn(torch.randn(5), torch.ones(5))


@requires_extension
def test_bad_input_to_the_ops():
    ops = torch.ops.lossext
    x = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="weight"):
        ops.prelu_forward(x, torch.ones(4))
    with pytest.raises(RuntimeError, match="beta"):
        ops.swish_backward(x, x, torch.ones(3, dtype=torch.float64), True)
    with pytest.raises(RuntimeError, match="grad_output"):
        ops.relu_backward(torch.randn(2, 3), x)
    with pytest.raises(RuntimeError, match="input must be float32"):
        ops.tanh_forward(torch.ones(3, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="negative_slope >= 0"):
        ops.leaky_relu_backward(x, x, -0.1, True)
    with pytest.raises(RuntimeError, match="approximate"):
        ops.gelu_forward(x, "erf")


def test_bad_arguments(backend):
    x = torch.randn(3)
    with pytest.raises(NotImplementedError, match="int64"):  # as F.leaky_relu and the losses
        lossext.relu(torch.ones(3, dtype=torch.int64))
    with pytest.raises(NotImplementedError, match="inplace"):
        lossext.relu(x, inplace=True)
    with pytest.raises(ValueError, match="min_val"):
        lossext.hardtanh(x, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="approximate"):
        lossext.gelu(x, approximate="erf")
    with pytest.raises(TypeError, match="beta"):
        lossext.swish(x, "one")
