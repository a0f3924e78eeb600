"""The torch.ops.lossext row-loss ops over the op-info table: opcheck, direct use, torch.compile."""

import pytest
import torch

import lossext
from conftest import assert_close
from lossext.testing.activation_info import ACTIVATIONS
from lossext.testing.loss_info import LOSS_BY_NAME, LOSSES
from loss_checks import CASES, FIRST_CASES, ground_truth, loss

pytestmark = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")

# Every op of every loss (cross-entropy's soft-target op too), with the loss's first parameter set.
OP_CASES = [pytest.param(op, op_name, id=op_name) for op in LOSSES for op_name in op.op_names]


def registered_forward_ops():
    """The <name> of every lossext::<name>_forward schema the extension registers."""
    return {schema.name[len("lossext::"):-len("_forward")] for schema in torch._C._jit_get_all_schemas()
            if schema.name.startswith("lossext::") and schema.name.endswith("_forward")}


def test_the_op_info_tables_cover_every_registered_op():
    losses = {op_name for op in LOSSES for op_name in op.op_names}
    activations = {activation.op for activation in ACTIVATIONS}
    fused_heads = {f"{name}_linear" for name in losses}  # <loss>_linear_forward, tests/test_linear_loss.py
    assert registered_forward_ops() == losses | activations | fused_heads


def op_inputs(op, op_name, device, dtype, requires_grad, reduction):
    input = torch.randn(6, 5, device=device, dtype=dtype, requires_grad=requires_grad)
    if op_name.endswith("_probabilities"):
        target = torch.rand(6, 5, device=device, dtype=dtype).softmax(1)
    else:
        target = torch.tensor([0, 4, -100, 2, 1, 3], device=device)
    weight = torch.rand(5, device=device, dtype=dtype)
    tensor_params = None
    if op.tensor_params:
        tensor_params = torch.tensor(list(op.tensor_params.values()), device=device, dtype=dtype,
                                     requires_grad=requires_grad)
    return input, target, weight, op.op_params(op.param_sets[0]), tensor_params, -100, reduction


@pytest.mark.parametrize("op,op_name", OP_CASES)
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("compute_grad", [False, True])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_forward(device, op, op_name, reduction, compute_grad, requires_grad):
    args = op_inputs(op, op_name, device, torch.float32, requires_grad, reduction)
    torch.library.opcheck(getattr(torch.ops.lossext, f"{op_name}_forward").default, (*args, compute_grad))


@pytest.mark.parametrize("op,op_name", OP_CASES)
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_opcheck_backward_and_out(device, op, op_name, reduction):
    input, target, weight, params, tensor_params, ignore_index, _ = op_inputs(op, op_name, device, torch.float32,
                                                                              False, reduction)
    grad_output = torch.rand(6 if reduction == 0 else (), device=device)
    torch.library.opcheck(getattr(torch.ops.lossext, f"{op_name}_backward").default,
                          (grad_output, input, target, weight, params, tensor_params, ignore_index, reduction))
    grad_buffer = torch.empty_like(input)
    torch.library.opcheck(getattr(torch.ops.lossext, f"{op_name}_forward_out").default,
                          (input, target, weight, params, tensor_params, ignore_index, reduction, grad_buffer))


@pytest.mark.parametrize("op,params", CASES)
def test_forward_out_writes_the_gradient_over_the_logits(op, params):
    # The CPU kernels read each row (or, in one pass, each logit) before writing its gradient.
    input, target = op.draw((7, 37), torch.float32, "cpu", params)
    logits = input.clone()
    forward_out = getattr(torch.ops.lossext, f"{op.name}_forward_out")
    out = forward_out(logits, target, None, op.op_params(params), op.op_tensor_params(op.tensor_params), -100, 1,
                      logits)
    x = input.double().requires_grad_(True)
    expected = ground_truth(op, params)(x, target)
    expected.backward()
    assert_close(out, expected.detach(), torch.float32, scale=max(1.0, expected.abs().item()), family=op.tolerance)
    assert_close(logits, x.grad, torch.float32, scale=x.grad.abs().max().item(), family=op.tolerance)
    if op.native is not None:  # and PyTorch's op in float32, to its default tolerance
        x = input.clone().requires_grad_(True)
        native = loss(op, params, op.native)(x, target)
        native.backward()
        torch.testing.assert_close(out, native.detach())
        torch.testing.assert_close(logits, x.grad)


@pytest.mark.parametrize("op,params", CASES)
def test_forward_out_rejects_a_buffer_over_part_of_what_it_reads(op, params):
    # Written over part of the logits (one element on), the gradient of row i would overwrite logits of
    # row i + 1 before they are read: a silently wrong result, so the op refuses the buffer.
    rows, classes = 7, 37
    input, target = op.draw((rows, classes), torch.float32, "cpu", params)
    forward_out = getattr(torch.ops.lossext, f"{op.name}_forward_out")
    params_, tensor_params = op.op_params(params), op.op_tensor_params(op.tensor_params)
    storage = torch.empty(rows * classes + 1)
    logits = storage[: rows * classes].view(rows, classes).copy_(input)
    shifted = storage[1:].view(rows, classes)
    with pytest.raises(RuntimeError, match="grad_input must be the input itself or not share memory"):
        forward_out(logits, target, None, params_, tensor_params, -100, 1, shifted)
    # A strided input (rows C + 3 apart) in the same storage as the buffer: at::get_overlap_status cannot say,
    # which counts as an overlap; the same rows in a storage of their own are accepted.
    padded = torch.empty(rows, classes + 3)
    padded[:, :classes] = input
    strided = padded[:, :classes]
    with pytest.raises(RuntimeError, match="grad_input must be the input itself"):
        forward_out(strided, target, None, params_, tensor_params, -100, 1, padded.view(-1)[: rows * classes].view(
            rows, classes))
    apart = torch.empty(rows, classes)
    out = forward_out(strided, target, None, params_, tensor_params, -100, 1, apart)
    expected = forward_out(input, target, None, params_, tensor_params, -100, 1, torch.empty(rows, classes))
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # The class weights are read too: a buffer over them is refused.
    weights = torch.rand(rows * classes)
    with pytest.raises(RuntimeError, match="grad_input must not share memory with the target, the weight"):
        forward_out(input, target, weights[:classes], params_, tensor_params, -100, 1, weights.view(rows, classes))


@pytest.mark.parametrize("op,params", CASES)
def test_backward_op_scales_by_grad_output(op, params):
    target = torch.tensor([1, 0, 3, 3, 2])
    input = op.away_from_discontinuity(torch.randn(5, 4, dtype=torch.float64), target, params).requires_grad_(True)
    grad_output = torch.rand(5, dtype=torch.float64)
    scales = op.op_tensor_params({name: torch.tensor(value, dtype=torch.float64)
                                  for name, value in op.tensor_params.items()})
    grad, _ = getattr(torch.ops.lossext, f"{op.name}_backward")(grad_output, input.detach(), target, None,
                                                                op.op_params(params), scales, -100, 0)
    (expected,) = torch.autograd.grad(ground_truth(op, params)(input, target, reduction="none"), input, grad_output)
    torch.testing.assert_close(grad, expected)


# ---- torch.compile ----


class TinyClassifier(torch.nn.Module):
    def __init__(self, loss_module):
        super().__init__()
        self.linear = torch.nn.Linear(16, 10)
        self.loss = loss_module

    def forward(self, x, target):
        return self.loss(self.linear(x), target)


def check_compiled_training_step(device, op, params, backend, probabilities=False):
    torch._dynamo.reset()
    model = TinyClassifier(getattr(lossext.nn, op.module)(**params)).to(device)
    x = torch.randn(32, 16, device=device)
    target = (torch.rand(32, 10, device=device).softmax(1) if probabilities
              else torch.randint(0, 10, (32,), device=device))
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    out = compiled(x, target)
    out.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    expected = op.ground_truth(model.linear(x), target, **params)
    expected.backward()
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, want)


COMPILE_CASES = [pytest.param(*case.values, probabilities, id=f"{case.id}{'-probabilities' * probabilities}")
                 for case in FIRST_CASES if case.values[0].module
                 for probabilities in (False, True) if case.values[0].supports_probabilities or not probabilities]


@pytest.mark.parametrize("op,params,probabilities", COMPILE_CASES)
@pytest.mark.parametrize("gradient", ["fused", "recompute"])
def test_torch_compile_fullgraph(device, op, params, probabilities, gradient):
    lossext.set_gradient_mode(gradient)
    try:
        check_compiled_training_step(device, op, params, "aot_eager", probabilities)
    finally:
        lossext.set_gradient_mode(None)


def test_torch_compile_inductor(device):
    check_compiled_training_step(device, LOSS_BY_NAME["hinge"], dict(p=1.5), "inductor")


@pytest.mark.parametrize("op,params", FIRST_CASES)
def test_torch_compile_no_graph_break(op, params):
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()
    fn = loss(op, params)

    def step(logits, target):
        return fn(logits * 2.0, target, reduction="sum")

    compiled = torch.compile(step, fullgraph=True, backend=counter)
    logits = torch.randn(8, 5)
    target = torch.randint(0, 5, (8,))
    logits = (op.away_from_discontinuity(logits * 2.0, target, params) / 2.0).requires_grad_(True)
    compiled(logits, target).backward()
    assert counter.frame_count == 1
    expected_logits = logits.detach().clone().requires_grad_(True)
    loss(op, params, op.ground_truth)(expected_logits * 2.0, target, reduction="sum").backward()
    torch.testing.assert_close(logits.grad, expected_logits.grad)
