"""Gradient semantics beyond one loss.backward(), over the op-info tables: double backward (gradgradcheck in
float64 and against PyTorch), retained graphs and repeated backward, in-place changes to returned
gradients, the fused mode's copy-free fast path, and the ops on meta and fake tensors and under torch.export.

The reproducers of issue 13 (items 1-3) are here verbatim, each named after what it reproduces.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

import lossext
from conftest import assert_close
from lossext.testing.activation_info import ACTIVATIONS
from lossext.testing.loss_info import LOSS_BY_NAME, LOSSES
from loss_checks import CASES, FIRST_CASES

requires_extension = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
ACTIVATION_CASES = [pytest.param(activation, id=activation.name) for activation in ACTIVATIONS]
# The fixtures `implementation` (the kernels in each gradient mode, then the reference), `gradient_mode`
# and `backend` are conftest's.


def call_loss(op, params, input, target, **kwargs):
    """op's function with its float parameters and its tensor parameters (floats unless passed in kwargs)."""
    return op.function(input, target, **{**params, **op.tensor_params, **kwargs})


def smooth_case(op, params, shape=(5, 4)):
    """float64 logits away from op's kinks and discontinuity, targets with one ignored row, a class weight."""
    target = torch.tensor([0, 3, -100, 2, 1])[: shape[0]]
    input = op.smooth_logits(shape, target, params).requires_grad_()
    weight = torch.rand(shape[1], dtype=torch.float64) + 0.5
    return input, target, weight


def activation_args(activation, shape=(3, 4, 5), dtype=torch.float64, device="cpu"):
    """An input away from the kinks by 0.1 (finite differences stay on one piece), and the channel parameter."""
    x = torch.randn(shape, dtype=torch.float64)
    for kink in activation.kinks:
        x = torch.where((x - kink).abs() < 0.1, x + 0.2, x)
    args = [x.to(dtype).to(device).requires_grad_()]
    if activation.kind == "channel":
        args.append((torch.rand(shape[1], dtype=torch.float64) + 0.5).to(dtype).to(device).requires_grad_())
    return args


def activation_call(activation, fn=None):
    """(input[, parameter]) -> output of `fn` (default lossext's) bound to the entry's arguments (softmax: dim 1)."""
    bound = activation.bind(fn)
    if activation.kind == "softmax":
        return lambda x: bound(x, dim=1)
    return bound


# ---- Item 1: double backward. ----


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("op,params", CASES)
def test_loss_gradgradcheck(implementation, op, params, reduction):
    input, target, weight = smooth_case(op, params)
    scalars = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
               for name, value in op.tensor_params.items()}

    def fn(input, *scalar_values):
        return call_loss(op, params, input, target, weight=weight, reduction=reduction,
                         **dict(zip(scalars, scalar_values)))

    assert torch.autograd.gradgradcheck(fn, (input, *scalars.values()))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_probabilities_gradgradcheck(implementation, label_smoothing):
    input = torch.randn(5, 4, 3, dtype=torch.float64, requires_grad=True)
    target = torch.rand(5, 4, 3, dtype=torch.float64).softmax(1)

    def fn(input):
        return lossext.cross_entropy(input, target, label_smoothing=label_smoothing)

    assert torch.autograd.gradgradcheck(fn, (input,))


FUNCTION_CASES = [case for case in FIRST_CASES if case.values[0].autograd_function]


@requires_extension
@pytest.mark.parametrize("op,params", FUNCTION_CASES)
def test_autograd_function_gradgradcheck(gradient_mode, op, params):
    # lossext.autograd's Functions run the same backward code, so they have the same double backward.
    input, target, weight = smooth_case(op, params)
    function = getattr(lossext.autograd, op.autograd_function)

    def fn(input):
        return function.apply(input, target, *params.values(), weight, -100, "sum")

    assert torch.autograd.gradgradcheck(fn, (input,))


@requires_extension
def test_cross_entropy_function_gradgradcheck(gradient_mode):
    # Its arguments are in F.cross_entropy's order, not the table's.
    input, target, weight = smooth_case(LOSS_BY_NAME["cross_entropy"], {})

    def fn(input):
        return lossext.autograd.CrossEntropyFunction.apply(input, target, weight, -100, "mean", 0.1)

    assert torch.autograd.gradgradcheck(fn, (input,))


def check_second_and_third_derivatives(first_derivative, inputs):
    """gradcheck of the first derivative (the second derivative; gradgradcheck alone would accept a first
    derivative without a graph, whose derivatives are zero on both sides), then gradgradcheck (the third)."""
    assert torch.autograd.gradcheck(first_derivative, inputs)
    assert torch.autograd.gradgradcheck(first_derivative, inputs)


def test_cross_entropy_third_derivative(gradient_mode):
    # The products of the double backward are differentiable themselves.
    target = torch.tensor([0, 3, 1])

    def first_derivative(input):
        return torch.autograd.grad(lossext.cross_entropy(input, target), input, create_graph=True)[0]

    check_second_and_third_derivatives(first_derivative, (torch.randn(3, 4, dtype=torch.float64,
                                                                      requires_grad=True),))


@pytest.mark.parametrize("activation", ACTIVATION_CASES)
def test_activation_gradgradcheck(backend, activation):
    assert torch.autograd.gradgradcheck(activation_call(activation), activation_args(activation))


@pytest.mark.parametrize("activation", ACTIVATION_CASES)
def test_activation_second_derivative_matches_torch(backend, activation):
    args = activation_args(activation)
    upstream = torch.randn(args[0].shape, dtype=torch.float64, requires_grad=True)
    results = []
    for fn in (activation_call(activation), activation_call(activation, activation.native)):
        leaves = [a.detach().clone().requires_grad_() for a in args]
        first = torch.autograd.grad(fn(*leaves), leaves, upstream, create_graph=True)
        penalty = sum((g * g).sum() for g in first)
        # Materialized: a piecewise-linear activation's penalty does not depend on x (its second derivative is 0).
        results.append(torch.autograd.grad(penalty, leaves + [upstream], materialize_grads=True))
    for ours, torchs in zip(*results):
        assert_close(ours, torchs, torch.float64, family="activation")


@requires_extension
@pytest.mark.parametrize("activation", ACTIVATION_CASES)
def test_activation_third_derivative(activation):
    fn = activation_call(activation)
    args = activation_args(activation, shape=(2, 4, 3))
    upstream = torch.randn(args[0].shape, dtype=torch.float64)  # not ones: softmax's sum is constant

    def first_derivative(*args):
        return torch.autograd.grad(fn(*args), args, upstream, create_graph=True)

    check_second_and_third_derivatives(first_derivative, args)


def test_reproducer_double_backward_leaves_grad_none(gradient_mode):
    # Issue 13, item 1: x.grad was None in both gradient modes.
    x = torch.randn(8, 5, requires_grad=True)
    t = torch.randint(0, 5, (8,))
    g, = torch.autograd.grad(lossext.cross_entropy(x, t), x, create_graph=True)
    (g * g).sum().backward()
    x_torch = x.detach().clone().requires_grad_()
    g_torch, = torch.autograd.grad(F.cross_entropy(x_torch, t), x_torch, create_graph=True)
    (g_torch * g_torch).sum().backward()
    assert x.grad is not None
    assert_close(g, g_torch, torch.float32)
    assert_close(x.grad, x_torch.grad, torch.float32)


def test_reproducer_gradient_penalty_through_a_linear(gradient_mode):
    # Issue 13, item 1: the weight's grad was None.
    results = []
    for loss_fn in (lossext.cross_entropy, F.cross_entropy):
        torch.manual_seed(1)
        linear = torch.nn.Linear(6, 5).double()
        x = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
        t = torch.randint(0, 5, (8,))
        loss = loss_fn(linear(x), t)
        g, = torch.autograd.grad(loss, x, create_graph=True)
        (loss + (g * g).sum()).backward()
        results.append((linear.weight.grad, linear.bias.grad, x.grad))
    for ours, torchs in zip(*results):
        assert ours is not None
        assert_close(ours, torchs, torch.float64)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu"])
def test_reproducer_activation_second_derivatives(backend, name):
    # Issue 13, item 1: sigmoid and tanh gave zeros, gelu None.
    x = torch.randn(7, dtype=torch.float64, requires_grad=True)
    g, = torch.autograd.grad(getattr(lossext, name)(x).sum(), x, create_graph=True)
    g.sum().backward()
    x_torch = x.detach().clone().requires_grad_()
    native = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu}[name]
    g_torch, = torch.autograd.grad(native(x_torch).sum(), x_torch, create_graph=True)
    g_torch.sum().backward()
    assert x.grad is not None and x.grad.abs().max() > 0
    assert_close(x.grad, x_torch.grad, torch.float64, family="activation")


@requires_extension
def test_gradients_the_forward_op_returns_are_not_differentiable():
    # The fused buffer is a result; differentiating it must raise, not give zeros (the backward op is differentiable).
    x = torch.randn(4, 5, requires_grad=True)
    t = torch.tensor([0, 1, 2, 3])
    loss, grad_input, _ = torch.ops.lossext.cross_entropy_forward(x, t, None, [0.0, 0.0, 0.0], None, -100, 1, True)
    assert loss.requires_grad and not grad_input.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        grad_input.sum().backward()


BACKWARD_OP_CASES = [pytest.param(case.values[0], case.values[1], op_name, id=f"{case.id}-{op_name}")
                     for case in FIRST_CASES for op_name in case.values[0].op_names]


@requires_extension
@pytest.mark.parametrize("reduction", [0, 1])
@pytest.mark.parametrize("op,params,op_name", BACKWARD_OP_CASES)
def test_backward_op_gradcheck_and_opcheck(op, params, op_name, reduction):
    # Each <name>_backward op is differentiable on its own: its formula (the reference's second derivatives)
    # against finite differences of the kernel, in float64; then opcheck's autograd and AOT checks of it.
    input, target, weight = smooth_case(op, params, shape=(4, 4))
    if op_name.endswith("_probabilities"):
        target = torch.rand(4, 4, dtype=torch.float64).softmax(1)
    tensor_params = op.op_tensor_params({name: torch.tensor(value, dtype=torch.float64)
                                         for name, value in op.tensor_params.items()})
    grad_output = torch.rand(4 if reduction == 0 else (), dtype=torch.float64, requires_grad=True)
    backward_op = getattr(torch.ops.lossext, f"{op_name}_backward").default
    differentiable = [grad_output, input] + ([] if tensor_params is None else [tensor_params.requires_grad_()])

    def fn(grad_output, input, tensor_params=None):
        return backward_op(grad_output, input, target, weight, op.op_params(params), tensor_params, -100, reduction)

    assert torch.autograd.gradcheck(fn, differentiable)
    torch.library.opcheck(backward_op, (grad_output, input, target, weight, op.op_params(params), tensor_params,
                                        -100, reduction))


# ---- Item 2: retained graphs, repeated backward, in-place changes to returned gradients. ----


def single_gradient(op, params, input, target):
    """d loss / d input from one plain backward of a fresh graph."""
    leaf = input.detach().clone().requires_grad_()
    call_loss(op, params, leaf, target).backward()
    return leaf.grad


def retain_case(op, params):
    input, target, _ = smooth_case(op, params, shape=(5, 7))
    return input.detach().float().requires_grad_(), target


@pytest.mark.parametrize("op,params", FIRST_CASES)
def test_reproducer_three_retained_backwards(implementation, op, params):
    # Issue 13, item 2: the third call raised in the fused mode (the saved buffer had been accumulated into).
    x, t = retain_case(op, params)
    loss = call_loss(op, params, x, t)
    for _ in range(3):
        loss.backward(retain_graph=True)
    assert_close(x.grad, 3 * single_gradient(op, params, x, t), torch.float32)


@pytest.mark.parametrize("op,params", FIRST_CASES)
def test_reproducer_zeroing_a_returned_gradient_then_backward_again(implementation, op, params):
    # Issue 13, item 2: zeroing a returned gradient in place and calling backward again raised.
    x, t = retain_case(op, params)
    expected = single_gradient(op, params, x, t)
    loss = call_loss(op, params, x, t)
    g, = torch.autograd.grad(loss, x, retain_graph=True)
    g.zero_()
    g_again, = torch.autograd.grad(loss, x, retain_graph=True)
    assert_close(g_again, expected, torch.float32)
    loss.backward(retain_graph=True)
    x.grad.zero_()
    loss.backward()
    assert_close(x.grad, expected, torch.float32)


def test_retained_graph_matches_f_cross_entropy(gradient_mode):
    results = []
    for loss_fn in (lossext.cross_entropy, F.cross_entropy):
        torch.manual_seed(0)
        x = torch.randn(6, 9, requires_grad=True)
        t = torch.randint(0, 9, (6,))
        loss = loss_fn(x, t, label_smoothing=0.1)
        for upstream in (1.0, 0.5, 1.0):
            loss.backward(torch.tensor(upstream), retain_graph=True)
            x.grad.mul_(2)  # an optimizer-style in-place change between the calls
        results.append(x.grad)
    assert_close(results[0], results[1], torch.float32)


def saved_storage_pointers(fn):
    """fn() under a saved-tensors hook that records the data pointer of everything autograd saves."""
    pointers = set()

    def pack(tensor):
        pointers.add(tensor.data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = fn()
    return result, pointers


@requires_extension
@pytest.mark.parametrize("op,params", FIRST_CASES)
def test_fused_plain_backward_hands_over_the_buffer_without_a_copy(op, params):
    # The fast path: loss.backward() makes the forward's gradient buffer x.grad itself, no (N, C) copy;
    # with retain_graph=True x.grad is a copy, and the buffer stays intact for the next call.
    lossext.set_gradient_mode("fused")
    try:
        x, t = retain_case(op, params)
        input_pointer = x.data_ptr()
        loss, pointers = saved_storage_pointers(lambda: call_loss(op, params, x, t))
        buffers = pointers - {input_pointer, t.data_ptr()}
        loss.backward()
        assert x.grad.data_ptr() in buffers

        x.grad = None
        loss, pointers = saved_storage_pointers(lambda: call_loss(op, params, x, t))
        loss.backward(retain_graph=True)
        assert x.grad.data_ptr() not in pointers
    finally:
        lossext.set_gradient_mode(None)


# ---- Item 3: meta and fake tensors, torch.export, range checks. ----

META_AND_FAKE = ["meta", "fake"]


def loss_inputs(op, device_kind):
    """(4, 5) logits that require grad and class-index targets, on meta, or as fake CPU tensors (under the mode)."""
    device = "meta" if device_kind == "meta" else "cpu"
    return torch.randn(4, 5, device=device, requires_grad=True), torch.zeros(4, dtype=torch.long, device=device)


def fake_or_meta(device_kind):
    """FakeTensorMode for fake tensors; nothing for meta ones, which the tests create on device="meta"."""
    return FakeTensorMode() if device_kind == "fake" else contextlib.nullcontext()


def check_no_values(tensor, device_kind):
    if device_kind == "meta":
        assert tensor.device.type == "meta"
    else:
        assert isinstance(tensor, FakeTensor)


@pytest.mark.parametrize("device_kind", META_AND_FAKE)
@pytest.mark.parametrize("op,params", FIRST_CASES)
def test_every_loss_on_meta_and_fake_tensors(backend, op, params, device_kind):
    with fake_or_meta(device_kind):
        x, t = loss_inputs(op, device_kind)
        for reduction, shape in (("mean", ()), ("none", (4,))):
            loss = call_loss(op, params, x, t, reduction=reduction)
            check_no_values(loss, device_kind)
            assert loss.shape == shape
        loss.sum().backward()
        check_no_values(x.grad, device_kind)
        assert x.grad.shape == x.shape


@pytest.mark.parametrize("device_kind", META_AND_FAKE)
def test_cross_entropy_probabilities_on_meta_and_fake_tensors(backend, device_kind):
    with fake_or_meta(device_kind):
        device = "meta" if device_kind == "meta" else "cpu"
        x = torch.randn(4, 5, 3, device=device, requires_grad=True)
        loss = lossext.cross_entropy(x, torch.rand(4, 5, 3, device=device), label_smoothing=0.1)
        loss.backward()
        check_no_values(x.grad, device_kind)
        assert loss.shape == () and x.grad.shape == x.shape


@pytest.mark.parametrize("device_kind", META_AND_FAKE)
@pytest.mark.parametrize("activation", ACTIVATION_CASES)
def test_every_activation_on_meta_and_fake_tensors(backend, activation, device_kind):
    with fake_or_meta(device_kind):
        args = activation_args(activation, dtype=torch.float32, device="meta" if device_kind == "meta" else "cpu")
        y = activation_call(activation)(*args)
        y.sum().backward()
        check_no_values(y, device_kind)
        assert y.shape == args[0].shape and args[0].grad.shape == args[0].shape


class LinearThenLoss(torch.nn.Module):
    """A small model using a loss (and an activation) of lossext, for torch.export."""

    def __init__(self, op, params):
        super().__init__()
        self.linear = torch.nn.Linear(8, 5)
        self.op, self.params = op, params

    def forward(self, x, target):
        return call_loss(self.op, self.params, lossext.gelu(self.linear(x)), target)


@pytest.mark.parametrize("op,params", [case for case in FIRST_CASES
                                       if case.values[0].name in ("cross_entropy", "two_scale_cross_entropy")])
def test_torch_export_of_a_model_using_a_loss(backend, op, params):
    torch.manual_seed(0)
    model = LinearThenLoss(op, params)
    x, target = torch.randn(6, 8), torch.randint(0, 5, (6,))
    exported = torch.export.export(model, (x, target))
    if backend == "extension":
        ops = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
        assert f"lossext.{op.name}_forward.default" in ops and "lossext.gelu_forward.default" in ops
    torch.testing.assert_close(exported.module()(x, target), model(x, target))


@pytest.mark.parametrize("op,params", FIRST_CASES)
def test_target_out_of_range_on_cpu_still_raises(backend, op, params):
    x = torch.randn(4, 5, requires_grad=True)
    for bad in (5, -1):
        with pytest.raises(IndexError, match="out of bounds"):
            call_loss(op, params, x, torch.tensor([0, bad, 1, 2]))
