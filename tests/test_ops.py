"""The torch.ops.lossext row-loss ops: opcheck, torch.compile, and direct use."""

import pytest
import torch
import torch.nn.functional as F

import lossext
from lossext._ops import registered_row_losses

pytestmark = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")

# Per loss: the params list its op takes, its tensor params (learnable scalars) if any, and
# whether its target is a dense (N, C) row.
OP_CASES = {
    "cross_entropy": dict(params=[0.1], dense=False),
    "cross_entropy_probabilities": dict(params=[0.1], dense=True),
    "hinge": dict(params=[1.5, 0.5], dense=False),
    "l1": dict(params=[], dense=False),
    "l2": dict(params=[], dense=False),
    "expectation": dict(params=[], dense=False),
    "regularized_expectation": dict(params=[], dense=False),
    "chebyshev": dict(params=[], dense=False),
    "squared_log": dict(params=[], dense=False),
    "tanimoto": dict(params=[], dense=False),
    "cauchy_schwarz": dict(params=[], dense=False),
    "alpha_loss": dict(params=[2.0], dense=False),
    "two_scale_cross_entropy": dict(params=[0.2], tensor_params=[1.5, 4.0, 2.0], dense=False),
}


def op_inputs(name, device, dtype, requires_grad, reduction):
    case = OP_CASES[name]
    input = torch.randn(6, 5, device=device, dtype=dtype, requires_grad=requires_grad)
    if case["dense"]:
        target = torch.rand(6, 5, device=device, dtype=dtype).softmax(1)
    else:
        target = torch.tensor([0, 4, -100, 2, 1, 3], device=device)
    weight = torch.rand(5, device=device, dtype=dtype)
    tensor_params = None
    if "tensor_params" in case:
        tensor_params = torch.tensor(case["tensor_params"], device=device, dtype=dtype,
                                     requires_grad=requires_grad)
    return input, target, weight, case["params"], tensor_params, -100, reduction


def test_every_registered_row_loss_has_an_op_case():
    assert set(registered_row_losses()) == set(OP_CASES)


@pytest.mark.parametrize("name", sorted(OP_CASES))
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("compute_grad", [False, True])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_forward(device, name, reduction, compute_grad, requires_grad):
    args = op_inputs(name, device, torch.float32, requires_grad, reduction)
    torch.library.opcheck(getattr(torch.ops.lossext, f"{name}_forward").default, (*args, compute_grad))


@pytest.mark.parametrize("name", sorted(OP_CASES))
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_opcheck_backward_and_out(device, name, reduction):
    input, target, weight, params, tensor_params, ignore_index, _ = op_inputs(name, device, torch.float32, False,
                                                                              reduction)
    grad_output = torch.rand(6 if reduction == 0 else (), device=device)
    torch.library.opcheck(getattr(torch.ops.lossext, f"{name}_backward").default,
                          (grad_output, input, target, weight, params, tensor_params, ignore_index, reduction))
    grad_buffer = torch.empty_like(input)
    torch.library.opcheck(getattr(torch.ops.lossext, f"{name}_forward_out").default,
                          (input, target, weight, params, tensor_params, ignore_index, reduction, grad_buffer))


def test_forward_out_writes_the_gradient_in_place_of_the_logits():
    input = torch.randn(7, 9)
    target = torch.randint(0, 9, (7,))
    logits = input.clone()
    loss = torch.ops.lossext.cross_entropy_forward_out(logits, target, None, [0.0], None, -100, 1, logits)
    x = input.clone().requires_grad_(True)
    expected = F.cross_entropy(x, target)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(logits, x.grad)


def test_backward_op_scales_by_grad_output():
    input = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1, 0, 3, 3, 2])
    grad_output = torch.rand(5, dtype=torch.float64)
    grad, _ = torch.ops.lossext.cross_entropy_backward(grad_output, input.detach(), target, None, [0.0], None, -100, 0)
    (expected,) = torch.autograd.grad(F.cross_entropy(input, target, reduction="none"), input, grad_output)
    torch.testing.assert_close(grad, expected)


class TinyClassifier(torch.nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.linear = torch.nn.Linear(16, 10)
        self.loss = loss

    def forward(self, x, target):
        return self.loss(self.linear(x), target)


@pytest.mark.parametrize("gradient", ["fused", "recompute"])
@pytest.mark.parametrize("probabilities", [False, True])
def test_torch_compile_fullgraph(device, gradient, probabilities):
    lossext.set_gradient_mode(gradient)
    torch._dynamo.reset()
    try:
        model = TinyClassifier(lossext.nn.CrossEntropyLoss(label_smoothing=0.1)).to(device)
        x = torch.randn(32, 16, device=device)
        target = (torch.rand(32, 10, device=device).softmax(1) if probabilities
                  else torch.randint(0, 10, (32,), device=device))
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        loss = compiled(x, target)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        expected = torch.nn.functional.cross_entropy(model.linear(x), target, label_smoothing=0.1)
        expected.backward()
        torch.testing.assert_close(loss, expected)
        for got, want in zip(grads, [p.grad for p in model.parameters()]):
            torch.testing.assert_close(got, want)
    finally:
        lossext.set_gradient_mode(None)


def test_torch_compile_inductor_no_graph_break():
    torch._dynamo.reset()
    counter = torch._dynamo.testing.CompileCounter()

    def step(logits, target):
        return lossext.cross_entropy(logits * 2.0, target, reduction="sum")

    compiled = torch.compile(step, fullgraph=True, backend=counter)
    logits = torch.randn(8, 5, requires_grad=True)
    target = torch.randint(0, 5, (8,))
    compiled(logits, target).backward()
    assert counter.frame_count == 1
    expected_logits = logits.detach().clone().requires_grad_(True)
    F.cross_entropy(expected_logits * 2.0, target, reduction="sum").backward()
    torch.testing.assert_close(logits.grad, expected_logits.grad)
