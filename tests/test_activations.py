"""Activations: forward and gradients against torch.nn.functional and lossext.activation_reference, both backends.

Tolerances, per dtype (the reason for each is next to it):
  float64   libm (kernels) against ATen's double math and the reference's torch ops: a few ulp.
  float32   the kernels' vector exp/tanh/erfc are within ~2e-7 relative (test_dense_grid_accuracy
            pins that), PyTorch's own within ~1e-7 (its GELU erf: 1.5e-7 absolute), and a
            softmax gradient adds ~sqrt(C) roundings: 1e-5 relative and 1e-6 absolute cover all with margin.
  bfloat16, float16  one rounding of an fp32 result to 8 (11) significant bits; two fp32 values a few
            ulp apart can round to neighbours: 2 ulp of the dtype relative.
Gradients computed from a saved output (sigmoid, tanh, softmax, elu, selu) also carry the output's
rounding: the derivative, a function of y, moves by |d(dy/dx)/dy| * ulp(y) / 2, at most
`OUTPUT_SENSITIVITY * ulp(1) * max|g|` absolutely (see grad_tolerance) - for PyTorch's own
output-based backward of sigmoid, tanh and softmax as much as for ours. It matters where the
derivative is small and cancels (y + alpha for ELU far left, 1 - y for sigmoid far right).
The truth is always the float64 function (torch.nn.functional or the reference) of the rounded input.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import lossext
from lossext import activation_reference as ref

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
TOLERANCE = {  # (rtol, atol); reasons in the module docstring
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (2 * 2.0**-8, 1e-5),
    torch.float16: (2 * 2.0**-11, 1e-5),
}
# max |d(dy/dx)/dy| of the activations whose backward reads the output (0: only its sign or
# bounds matter, which rounding keeps). elu: d/dy (y + alpha) = 1; selu: 1 (times scale alpha <= 2 ulp(1)).
OUTPUT_SENSITIVITY = {"sigmoid": 1.0, "tanh": 2.0, "softmax": 2.0, "elu": 1.0, "selu": 2.0}

# name -> (lossext function, torch.nn.functional counterpart, reference, kinks to keep away from).
ELEMENTWISE = {
    "relu": (lossext.relu, F.relu, ref.relu, (0.0,)),
    "leaky_relu": (lambda x: lossext.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2),
                   lambda x: ref.leaky_relu(x, 0.2), (0.0,)),
    "leaky_relu_negative_slope": (lambda x: lossext.leaky_relu(x, -0.3), lambda x: F.leaky_relu(x, -0.3),
                                  lambda x: ref.leaky_relu(x, -0.3), (0.0,)),
    "elu": (lossext.elu, F.elu, ref.elu, (0.0,)),
    "elu_alpha": (lambda x: lossext.elu(x, 0.5), lambda x: F.elu(x, 0.5), lambda x: ref.elu(x, 0.5), (0.0,)),
    "elu_negative_alpha": (lambda x: lossext.elu(x, -0.7), lambda x: F.elu(x, -0.7), lambda x: ref.elu(x, -0.7),
                           (0.0,)),
    "selu": (lossext.selu, F.selu, ref.selu, (0.0,)),
    "silu": (lossext.silu, F.silu, ref.silu, ()),
    "gelu": (lossext.gelu, F.gelu, ref.gelu, ()),
    "gelu_tanh": (lambda x: lossext.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: ref.gelu(x, approximate="tanh"), ()),
    "sigmoid": (lossext.sigmoid, torch.sigmoid, ref.sigmoid, ()),
    "tanh": (lossext.tanh, torch.tanh, ref.tanh, ()),
    "hardtanh": (lossext.hardtanh, F.hardtanh, ref.hardtanh, (-1.0, 1.0)),
    "hardtanh_bounds": (lambda x: lossext.hardtanh(x, -0.5, 2.0), lambda x: F.hardtanh(x, -0.5, 2.0),
                        lambda x: ref.hardtanh(x, -0.5, 2.0), (-0.5, 2.0)),
}


def family(name: str) -> str:
    return name.split("_negative")[0].split("_alpha")[0].split("_bounds")[0].split("_tanh")[0]


def ulp_of_one(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def grad_tolerance(name: str, dtype: torch.dtype, grad_output: torch.Tensor):
    rtol, atol = TOLERANCE[dtype]
    sensitivity = OUTPUT_SENSITIVITY.get(family(name), 0.0)
    if grad_output.numel() == 0:
        return rtol, atol
    if sensitivity and dtype != torch.float64:
        atol += sensitivity * ulp_of_one(dtype) * grad_output.abs().max().item()
    return rtol, atol


@pytest.fixture(params=["extension", "reference"])
def backend(request):
    if request.param == "extension" and not lossext.extension_loaded():
        pytest.skip("lossext._C is not built")
    lossext.set_backend(request.param)
    yield request.param
    lossext.set_backend(None)


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


def assert_close(actual, expected, rtol, atol, what):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=True, msg=lambda m: f"{what}: {m}")


def upcast_reference(fn, x, g, *params):
    """`fn` in float64 on the (already rounded) inputs, cast back: the ground truth for half types."""
    outs = forward_backward(fn, x.double(), g.double(), *[p.double() for p in params])
    return tuple(o.to(x.dtype) for o in outs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_matches_torch_and_reference(backend, name, dtype, device):
    ours, native, reference, kinks = ELEMENTWISE[name]
    x = sample((37, 45), dtype, device, away_from=kinks)  # 1665 elements: 8-lane groups and a tail
    g = sample((37, 45), dtype, device, seed=1, scale=1.0)
    y, dx = forward_backward(ours, x, g)
    rtol, atol = TOLERANCE[dtype]
    grad_rtol, grad_atol = grad_tolerance(name, dtype, g)
    for label, expected_fn in (("torch", native), ("reference", reference)):
        # The truth is the float64 function of the (rounded) input: PyTorch's own float32 and half
        # kernels have errors of their own (1 - tanh^2 where tanh rounds to 1, 1 + erf in the tail).
        expected_y, expected_dx = upcast_reference(expected_fn, x, g)
        assert y.dtype == dtype and dx.dtype == dtype
        assert_close(y, expected_y, rtol, atol, f"{name} forward vs {label}")
        assert_close(dx, expected_dx, grad_rtol, grad_atol, f"{name} gradient vs {label}")


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
@pytest.mark.parametrize("streamed", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_streaming_stores(monkeypatch, name, dtype, streamed):
    # Light activations' float32 and bfloat16 outputs above the last-level cache are written upwards
    # with streaming stores, everything else downwards with ordinary ones (activation.h,
    # cpu/activation_driver.h); LOSSEXT_STREAMING_STORES_ABOVE=0 forces streaming for every size,
    # a huge value forbids it (other cases ignore it). 1665 elements end in a partial vector;
    # 300,007 split into ranges on every thread, whose bfloat16 ranges may start mid-line.
    monkeypatch.setenv("LOSSEXT_STREAMING_STORES_ABOVE", "0" if streamed else str(1 << 62))
    ours, native, _, kinks = ELEMENTWISE[name]
    rtol, atol = TOLERANCE[dtype]
    label = "streamed" if streamed else "not streamed"
    for shape in ((37, 45), (300_007,)):
        x = sample(shape, dtype, "cpu", away_from=kinks)
        g = sample(shape, dtype, "cpu", seed=1, scale=1.0)
        y, dx = forward_backward(ours, x, g)
        expected_y, expected_dx = upcast_reference(native, x, g)
        assert_close(y, expected_y, rtol, atol, f"{name} forward, {label}, {shape}")
        assert_close(dx, expected_dx, *grad_tolerance(name, dtype, g), f"{name} gradient, {label}, {shape}")


SPECIALS = [float("-inf"), -100.0, -3.0, -0.0, 0.0, 3.0, 100.0, float("inf"), float("nan")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_special_values(backend, name, dtype, device):
    """+-inf and NaN (and values where exp overflows) give what torch.nn.functional gives in float64,
    NaN where that is NaN (x * sigmoid(x) at x = -inf is -inf * 0). Repeated 8 times (72 elements), so
    each value also falls in whole vectors, in even and odd positions (the CPU driver widens bfloat16
    in even/odd lanes), besides a partial vector at the end."""
    ours, native, _, _ = ELEMENTWISE[name]
    x = torch.tensor(SPECIALS * 8, dtype=dtype, device=device)
    g = torch.ones_like(x)
    y, dx = forward_backward(ours, x, g)
    expected_y, expected_dx = upcast_reference(native, x, g)
    # PyTorch's elu_backward and hardtanh_backward treat NaN differently in their vector loops (NaN
    # gradient; zero) and their scalar remainders (the positive slope; the gradient passed through).
    # Ours give the vector loops' answer wherever the NaN falls (elu.h, relu_family.h).
    if family(name) in ("elu", "selu"):
        expected_dx[x.isnan()] = float("nan")
    if family(name) == "hardtanh":
        expected_dx[x.isnan()] = 0.0
    rtol, atol = TOLERANCE[dtype]
    assert_close(y, expected_y, rtol, atol, f"{name} forward at {SPECIALS}")
    assert_close(dx, expected_dx, *grad_tolerance(name, dtype, g), f"{name} gradient at {SPECIALS}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_strided_and_empty(backend, name, device):
    ours, native, _, kinks = ELEMENTWISE[name]
    rtol, atol = TOLERANCE[torch.float32]
    base = sample((6, 10, 7, 5), torch.float32, device, away_from=kinks)
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
        y, dx = forward_backward(ours, x, g)
        expected_y, expected_dx = upcast_reference(native, x, g)
        assert y.shape == x.shape and dx.shape == x.shape
        if backend == "extension":  # the kernels return torch.empty_like's layout (the fake kernels' too)
            assert y.stride() == torch.empty_like(x).stride()
        assert_close(y, expected_y, rtol, atol, f"{name} forward, {label}")
        assert_close(dx, expected_dx, *grad_tolerance(name, torch.float32, g), f"{name} gradient, {label}")


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_gradcheck(backend, name):
    ours, _, _, kinks = ELEMENTWISE[name]
    x = sample((4, 9), torch.float64, "cpu", away_from=kinks).requires_grad_()
    assert torch.autograd.gradcheck(ours, (x,))


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_compile_fullgraph(backend, name):
    ours, _, _, kinks = ELEMENTWISE[name]
    torch._dynamo.reset()
    compiled = torch.compile(ours, fullgraph=True)
    x = sample((5, 19), torch.float32, "cpu", away_from=kinks)
    g = sample((5, 19), torch.float32, "cpu", seed=3)
    for actual, expected in zip(forward_backward(compiled, x, g), forward_backward(ours, x, g)):
        torch.testing.assert_close(actual, expected)


# ---- What is saved for backward. ----

SAVES = {
    "relu": "output", "leaky_relu": "output", "leaky_relu_negative_slope": "input", "elu": "output",
    "elu_alpha": "output", "elu_negative_alpha": "input", "selu": "output", "silu": "input", "gelu": "input",
    "gelu_tanh": "input", "sigmoid": "output", "tanh": "output", "hardtanh": "output", "hardtanh_bounds": "output",
}


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


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_saves_one_tensor(name):
    if not lossext.extension_loaded():
        pytest.skip("lossext._C is not built")
    ours = ELEMENTWISE[name][0]
    x = sample((3, 4), torch.float32, "cpu").requires_grad_()
    assert saved_kinds(ours, x) == [SAVES[name]]


def test_saves_for_channel_ops_and_softmax():
    if not lossext.extension_loaded():
        pytest.skip("lossext._C is not built")
    x = sample((3, 4, 5), torch.float32, "cpu").requires_grad_()
    w = torch.rand(4, requires_grad=True)
    assert saved_kinds(lossext.prelu, x, w) == ["input", "parameter"]
    assert saved_kinds(lossext.swish, x, w) == ["input", "parameter"]
    assert saved_kinds(lambda t: lossext.softmax(t, 1), x) == ["output"]


# ---- Dense-grid accuracy of the CPU vector math (float32). ----


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
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


# ---- PReLU and Swish: per-channel parameters. ----

CHANNEL_SHAPES = {
    "rows": (29, 13),  # (N, C): the parameter varies along the contiguous dim (13: a tail of 5)
    "images": (3, 6, 5, 7),  # (N, C, H, W): runs of 35 elements share a parameter
    "vector": (41,),  # 1-D: one parameter only
}


def swish_native(x, beta):
    return x * torch.sigmoid(ref.channel_view(beta, x) * x) if isinstance(beta, torch.Tensor) else F.silu(x)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(CHANNEL_SHAPES))
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("name", ["prelu", "swish"])
def test_channel_ops_match_torch_and_reference(backend, name, per_channel, layout, dtype, device):
    shape = CHANNEL_SHAPES[layout]
    if per_channel and len(shape) < 2:
        pytest.skip("a 1-D input has one channel")
    channels = shape[1] if per_channel else 1
    x = sample(shape, dtype, device, away_from=(0.0,))
    g = sample(shape, dtype, device, seed=1, scale=1.0)
    parameter = (torch.rand(channels, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.25)
    parameter = parameter.to(dtype).to(device)
    ours = lossext.prelu if name == "prelu" else lossext.swish
    native = F.prelu if name == "prelu" else lambda t, b: t * torch.sigmoid(ref.channel_view(b, t) * t)
    reference = ref.prelu if name == "prelu" else ref.swish
    y, dx, dp = forward_backward(ours, x, g, parameter)
    rtol, atol = TOLERANCE[dtype]
    assert dp.shape == parameter.shape and dp.dtype == dtype
    for label, expected_fn in (("torch", native), ("reference", reference)):
        expected = upcast_reference(expected_fn, x, g, parameter)
        assert_close(y, expected[0], rtol, atol, f"{name} forward vs {label}")
        assert_close(dx, expected[1], rtol, atol, f"{name} input gradient vs {label}")
        # The parameter's gradient is a sum over up to 377 elements: its rounding error grows with
        # the count (fp32 accumulation for half types, then one rounding to the dtype).
        sum_atol = atol * x.numel() / channels
        assert_close(dp, expected[2], rtol, sum_atol, f"{name} parameter gradient vs {label}")


@pytest.mark.parametrize("name", ["prelu", "swish"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_channel_ops_gradcheck(backend, name, per_channel):
    x = sample((3, 4, 5), torch.float64, "cpu", away_from=(0.0,)).requires_grad_()
    parameter = (torch.rand(4 if per_channel else 1, dtype=torch.float64) + 0.5).requires_grad_()
    fn = lossext.prelu if name == "prelu" else lossext.swish
    assert torch.autograd.gradcheck(fn, (x, parameter))


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


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
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


# ---- Softmax along every dim. ----


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_softmax_every_dim(backend, dim, dtype, device):
    x = sample((5, 19, 11), dtype, device)  # 19 and 11: 8-lane groups and tails along rows and columns
    g = sample((5, 19, 11), dtype, device, seed=1, scale=1.0)
    y, dx = forward_backward(lambda t: lossext.softmax(t, dim), x, g)
    rtol, atol = TOLERANCE[dtype]
    grad_rtol, grad_atol = grad_tolerance("softmax", dtype, g)
    for label, fn in (("torch", lambda t: F.softmax(t, dim)), ("reference", lambda t: ref.softmax(t, dim))):
        expected_y, expected_dx = upcast_reference(fn, x, g)
        assert_close(y, expected_y, rtol, atol, f"softmax(dim={dim}) vs {label}")
        assert_close(dx, expected_dx, grad_rtol, grad_atol, f"softmax(dim={dim}) gradient vs {label}")


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_streaming_stores(monkeypatch, dtype):
    # float32 softmax rows above the cache are written with streaming stores, forward and backward;
    # LOSSEXT_STREAMING_STORES_ABOVE=0 forces them. Rows of 37 start at every alignment (single
    # elements before the first aligned vector), rows of 64 are aligned, 2000 rows span the threads.
    monkeypatch.setenv("LOSSEXT_STREAMING_STORES_ABOVE", "0")
    for shape in ((2000, 37), (40, 64)):
        x = sample(shape, dtype, "cpu")
        g = sample(shape, dtype, "cpu", seed=1, scale=1.0)
        y, dx = forward_backward(lambda t: lossext.softmax(t, -1), x, g)
        expected_y, expected_dx = upcast_reference(lambda t: F.softmax(t, -1), x, g)
        assert_close(y, expected_y, *TOLERANCE[dtype], f"softmax streamed, {shape}")
        assert_close(dx, expected_dx, *grad_tolerance("softmax", dtype, g), f"softmax gradient streamed, {shape}")


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


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_gradcheck_and_compile(backend, dim):
    x = sample((3, 4, 5), torch.float64, "cpu").requires_grad_()
    assert torch.autograd.gradcheck(lambda t: lossext.softmax(t, dim), (x,))
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: lossext.softmax(t, dim), fullgraph=True)
    g = sample((3, 4, 5), torch.float64, "cpu", seed=1)
    for actual, expected in zip(forward_backward(compiled, x, g),
                                forward_backward(lambda t: lossext.softmax(t, dim), x, g)):
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("name", ["prelu", "swish"])
def test_channel_ops_compile_fullgraph(backend, name):
    torch._dynamo.reset()
    fn = lossext.prelu if name == "prelu" else lossext.swish
    compiled = torch.compile(fn, fullgraph=True)
    x = sample((4, 5, 6), torch.float32, "cpu", away_from=(0.0,))
    g = sample((4, 5, 6), torch.float32, "cpu", seed=1)
    parameter = torch.rand(5) + 0.5
    for actual, expected in zip(forward_backward(compiled, x, g, parameter), forward_backward(fn, x, g, parameter)):
        torch.testing.assert_close(actual, expected)


# ---- opcheck on every op. ----


def opcheck_cases():
    x = sample((4, 6, 5), torch.float32, "cpu", away_from=(0.0,))
    g = sample((4, 6, 5), torch.float32, "cpu", seed=1)
    y = x.sigmoid()
    w = torch.rand(6) + 0.5
    scalar = torch.tensor(0.7)
    t = x.transpose(0, 2)
    return {
        "relu_forward": [(x,), (t,)], "relu_backward": [(g, y)],
        "leaky_relu_forward": [(x, 0.1)], "leaky_relu_backward": [(g, y, 0.1, True), (g, x, -0.1, False)],
        "prelu_forward": [(x, w), (x, scalar)], "prelu_backward": [(g, x, w, True), (g, x, scalar, False)],
        "elu_forward": [(x, 1.0)], "elu_backward": [(g, y, 1.0, True), (g, x, -0.5, False)],
        "selu_forward": [(x,)], "selu_backward": [(g, y)],
        "silu_forward": [(x,)], "silu_backward": [(g, x)],
        "swish_forward": [(x, w), (x, scalar)], "swish_backward": [(g, x, w, True), (g, x, scalar, False)],
        "gelu_forward": [(x, "none"), (x, "tanh")], "gelu_backward": [(g, x, "none"), (g, x, "tanh")],
        "sigmoid_forward": [(x,)], "sigmoid_backward": [(g, y)],
        "tanh_forward": [(x,)], "tanh_backward": [(g, y)],
        "hardtanh_forward": [(x, -1.0, 1.0)], "hardtanh_backward": [(g, y, -0.5, 0.5)],
        "softmax_forward": [(x, 1), (x, -1)], "softmax_backward": [(g, y, 0)],
    }


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
@pytest.mark.parametrize("op_name", list(opcheck_cases()))
def test_opcheck(op_name):
    op = getattr(torch.ops.lossext, op_name).default
    for args in opcheck_cases()[op_name]:
        if op_name.endswith("_forward"):
            # The forward ops are differentiable: check their autograd registration too.
            args = tuple(a.clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args)
        torch.library.opcheck(op, args)


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


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
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
    with pytest.raises(TypeError, match="int64"):
        lossext.relu(torch.ones(3, dtype=torch.int64))
    with pytest.raises(NotImplementedError, match="inplace"):
        lossext.relu(x, inplace=True)
    with pytest.raises(ValueError, match="min_val"):
        lossext.hardtanh(x, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="approximate"):
        lossext.gelu(x, approximate="erf")
    with pytest.raises(TypeError, match="beta"):
        lossext.swish(x, "one")
