"""What is particular to lossext.cross_entropy, the drop-in for F.cross_entropy: soft targets and the
autograd Function and module with torch's argument order.

Its checks against F.cross_entropy in every dtype, reduction, shape and option (weights, label
smoothing, ignore_index) are the generic ones of test_losses.py, over its op-info entry.
"""

import pytest
import torch
import torch.nn.functional as F

import lossext
from conftest import DTYPES, assert_close
from loss_checks import REDUCTIONS, check_matches_float64, float64_kwargs, make_case, resolve


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


def test_probability_target_gradient_flows_to_target(device):
    # The kernels produce no gradient for soft targets; lossext must still give one (through the reference).
    input = torch.randn(4, 6, device=device, requires_grad=True)
    target = torch.rand(4, 6, device=device).softmax(1).requires_grad_(True)
    (grad,) = torch.autograd.grad(lossext.cross_entropy(input, target), target)
    (expected,) = torch.autograd.grad(F.cross_entropy(input, target), target)
    torch.testing.assert_close(grad, expected)


def test_autograd_function_and_module(device):
    # CrossEntropyFunction.apply and CrossEntropyLoss take F.cross_entropy's argument order.
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


@pytest.mark.parametrize("cap", [0.0, -1.0, float("inf"), float("nan")])
def test_logit_softcap_must_be_positive_and_finite(cap):
    # None means no cap; 0 is refused rather than read as "none" (Gemma 2's caps are 30 and 50).
    input, target = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    for function in (lossext.cross_entropy, lossext.reference.cross_entropy):
        with pytest.raises(ValueError, match="logit_softcap"):
            function(input, target, logit_softcap=cap)
    if lossext.extension_loaded() and cap != 0.0:  # the op's 0 is no cap; what else it refuses itself
        with pytest.raises(RuntimeError, match="logit_softcap must be 0"):
            torch.ops.lossext.cross_entropy_forward(input, target, None, [0.0, 0.0, cap], None, -100, 1, False)


def test_logit_softcap_saturates_like_the_capped_logits():
    # A logit far above the cap is read as the cap itself: the loss of [1e4, 0] capped at 2 is that of
    # [2 tanh(5000), 0] = [2, 0], and its gradient there is (1 - tanh^2) times the softmax's, 0 in float32.
    x = torch.tensor([[1e4, 0.0], [0.5, -0.5]], requires_grad=True)
    target = torch.tensor([1, 0])
    out = lossext.cross_entropy(x, target, logit_softcap=2.0, reduction="none")
    capped = 2.0 * torch.tanh(x.detach() / 2.0)
    torch.testing.assert_close(out.detach(), F.cross_entropy(capped, target, reduction="none"))
    out.sum().backward()
    assert x.grad[0, 0] == 0 and x.grad[0, 1] != 0
