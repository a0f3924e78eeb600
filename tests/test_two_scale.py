"""What is particular to two-scale cross-entropy (Berlyand, Creese & Jabin 2021): rows at the margin
threshold, masked and NaN logits, the scales' gradients, the module's modes, the metrics.

Its checks against the reference in every dtype and reduction (the scales' gradients included),
gradcheck, one-class rows and the rest are the generic ones of test_losses.py, over its op-info entry.
"""

import pytest
import torch
import torch.nn.functional as F

import lossext
from conftest import assert_close
from lossext import metrics
from lossext.testing.loss_info import LOSS_BY_NAME
from loss_checks import loss, tensor_params, value_and_grads

TWO_SCALE = LOSS_BY_NAME["two_scale_cross_entropy"]
PARAMS = TWO_SCALE.param_sets[0]  # eta
ETA = PARAMS["eta"]


def logits_away_from_eta(shape, dtype, device):
    """Random logits (normal times 2) and targets, every row's margin at least 0.05 from eta."""
    return TWO_SCALE.draw(shape, dtype, device, PARAMS, ignore_fraction=0, scale=2.0)


def kernel_and_reference(x, target, dtype, device, reference_x=None, **kwargs):
    """Loss and gradients (input's, then the scales' by name) of the kernels in x's dtype with scales in
    `dtype`, and of the reference in float64 on `reference_x` (default x) with float64 scales."""
    got = value_and_grads(loss(TWO_SCALE, PARAMS), x, target, tensors=tensor_params(TWO_SCALE, dtype, device),
                          **kwargs)
    want = value_and_grads(loss(TWO_SCALE, PARAMS, TWO_SCALE.reference), (x if reference_x is None else reference_x)
                           .double(), target, upstream_dtype=x.dtype,
                           tensors=tensor_params(TWO_SCALE, torch.float64, device), **kwargs)
    return got, want


def test_rows_exactly_at_eta_use_r2(device):
    # delta = X_t - max_{j != t} X_j equal to eta is "well classified" (delta >= eta): scale r2.
    # Margins of exactly 0.5 (all values are exact binary fractions).
    x = torch.tensor([[1.5, 1.0, 0.0], [0.0, 1.5, 1.0]], dtype=torch.float64, device=device)
    target = torch.tensor([0, 1], device=device)
    r1, r2 = 2.0, 7.0
    at_eta = lossext.two_scale_cross_entropy(x, target, r1, r2, 0.5, reduction="none")
    assert_close(at_eta, F.cross_entropy(r2 * x, target, reduction="none"), torch.float64)
    # Just above the margin the rows fall back to r1.
    above = lossext.two_scale_cross_entropy(x, target, r1, r2, 0.5 + 1e-9, reduction="none")
    assert_close(above, F.cross_entropy(r1 * x, target, reduction="none"), torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_minus_inf_logits_leave_scale_gradients_finite(backend, device, gradient_mode, dtype):
    # A masked class (logit -inf) has p_j = 0; its term p_j (o_j - m) in the scales' gradient is
    # taken at its limit 0, not 0 * -inf = NaN. Equal to the same rows with the masked classes
    # removed, where the margin and softmax are unchanged.
    x, target = logits_away_from_eta((12, 9), dtype, device)
    masked = torch.zeros_like(x, dtype=torch.bool)
    masked[:, 7:] = True
    target = target % 7  # targets among the unmasked classes
    (out, grad, scale_grads), (want_out, want_grad, want_scale_grads) = kernel_and_reference(
        x.masked_fill(masked, float("-inf")), target, dtype, device, reference_x=x[:, :7])
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    assert all(torch.isfinite(g).all() for g in scale_grads.values())
    assert_close(out, want_out, dtype)
    assert_close(grad[:, :7], want_grad, dtype, scale=want_grad.abs().max().item())
    assert torch.all(grad[:, 7:] == 0)
    for name, got in scale_grads.items():
        assert_close(got, want_scale_grads[name], dtype, scale=max(g.abs().item() for g in want_scale_grads.values()))


def test_nan_logits_match_reference(backend, device, gradient_mode):
    # A NaN among the other logits makes max_{j != t} X_j NaN, as amax in the reference: the margin
    # is NaN, "delta < eta" is false, so the row takes r2 (its gradients NaN, r1's zero). A NaN
    # at the target does the same through X_t. Every position in a 9-class row, 16-wide vectors or not.
    for num_classes in (9, 40):
        x, target = logits_away_from_eta((num_classes, num_classes), torch.float32, device)
        target = torch.zeros_like(target)
        x[torch.arange(num_classes), torch.arange(num_classes)] = float("nan")  # row i: NaN at class i
        (out, _, scale_grads), (want_out, _, want_scale_grads) = kernel_and_reference(
            x, target, torch.float32, device, reduction="none")
        assert torch.isnan(out).all() and torch.isnan(want_out).all()
        for name, got in scale_grads.items():
            want = want_scale_grads[name]
            assert torch.equal(got.isnan(), want.isnan())
            assert_close(got.nan_to_num(), want.nan_to_num(), torch.float32)


def test_equal_scales_equal_cross_entropy(backend, device):
    x, target = logits_away_from_eta((16, 9), torch.float64, device)
    norm = torch.tensor(3.0, dtype=torch.float64, device=device)
    got = lossext.two_scale_cross_entropy(x, target, norm, norm, ETA, norm)
    assert_close(got, F.cross_entropy(x, target), torch.float64)


def test_scale_gradients_are_deterministic(device):
    x, target = logits_away_from_eta((4096, 37), torch.float32, device)
    results = []
    for _ in range(3):
        r1, r2, norm = tensor_params(TWO_SCALE, torch.float32, device).values()
        value = lossext.two_scale_cross_entropy(x, target, r1, r2, ETA, norm)
        results.append(torch.stack(torch.autograd.grad(value, [r1, r2, norm])))
    assert all(torch.equal(results[0], other) for other in results[1:])


@pytest.mark.parametrize("mode", ["adaptive", "fixed", "separation"])
def test_module_modes(device, mode):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).to(device)
    criterion = lossext.nn.TwoScaleCrossEntropyLoss(eta=0.1, r1=2.0, r2=20.0, mode=mode).to(device)
    x = torch.randn(64, 8, device=device)
    target = torch.randint(0, 4, (64,), device=device)
    norm = lossext.parameter_norm(model)
    loss = criterion(model(x), target, norm=norm)
    loss.backward()
    trainable = {name for name, p in criterion.named_parameters()}
    assert trainable == {"adaptive": {"r1", "r2"}, "fixed": set(), "separation": {"separation"}}[mode]
    for p in criterion.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    # The network's weights get a gradient through R as well as through the logits.
    assert all(p.grad is not None for p in model.parameters())
    # The same value from the reference with the mode's scales spelled out.
    logits = model(x).detach()
    r = norm.detach()
    if mode == "separation":
        r1, r2 = r, criterion.separation.detach() * r
    else:
        r1, r2 = criterion.r1.detach(), criterion.r2.detach()
    expected = lossext.reference.two_scale_cross_entropy(logits, target, r1, r2, 0.1, r)
    assert_close(loss.detach(), expected, torch.float32)
    probs = criterion.predict_proba(logits, norm=r)
    test_scale = r if mode == "separation" else criterion.r1.detach()
    assert_close(probs, torch.softmax(logits * test_scale / r, dim=1), torch.float32)


def test_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        lossext.nn.TwoScaleCrossEntropyLoss(eta=0.1, mode="both")
    with pytest.raises(ValueError, match="positive"):
        lossext.nn.TwoScaleCrossEntropyLoss(eta=0.1, r1=-1.0)
    with pytest.raises(ValueError, match="r2"):
        lossext.two_scale_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]), 1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="r1"):
        lossext.two_scale_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]), torch.ones(2), 1.0, 0.1)


@pytest.mark.parametrize("mode", ["adaptive", "fixed", "separation"])
def test_torch_compile_fullgraph_module(mode):
    torch._dynamo.reset()
    model = torch.nn.Linear(8, 5)
    criterion = lossext.nn.TwoScaleCrossEntropyLoss(eta=0.1, r1=1.0, r2=5.0, mode=mode)

    def step(x, target):
        return criterion(model(x), target, norm=lossext.parameter_norm(model))

    x = torch.randn(16, 8)
    target = torch.randint(0, 5, (16,))
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss = compiled(x, target)
    loss.backward()
    compiled_grads = [p.grad.clone() for p in list(model.parameters()) + list(criterion.parameters())]
    for p in list(model.parameters()) + list(criterion.parameters()):
        p.grad = None
    expected = step(x, target)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for got, p in zip(compiled_grads, list(model.parameters()) + list(criterion.parameters())):
        torch.testing.assert_close(got, p.grad)


def test_parameter_norm_is_the_product_of_layer_norms():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8, 3, bias=False))
    conv, linear = model[0], model[3]
    expected = torch.cat([conv.weight.flatten(), conv.bias]).norm() * linear.weight.norm()
    norm = lossext.parameter_norm(model)
    torch.testing.assert_close(norm, expected)
    norm.backward()
    assert conv.weight.grad is not None and linear.weight.grad is not None
    with pytest.raises(ValueError, match="no Linear or Conv"):
        lossext.parameter_norm(torch.nn.ReLU())


class TestMetrics:
    # Three classes, four rows; row 3 is ignored.
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 2.5], [1.0, 0.5, 4.0], [9.0, 0.0, 0.0]])
    target = torch.tensor([0, 2, 1, -100])

    def test_margin(self):
        torch.testing.assert_close(metrics.margin(self.logits, self.target), torch.tensor([1.0, -0.5, -3.5]))

    def test_accuracy_and_top_k(self):
        assert metrics.accuracy(self.logits, self.target).item() == pytest.approx(1 / 3)
        assert metrics.top_k_accuracy(self.logits, self.target, 2).item() == pytest.approx(2 / 3)
        assert metrics.top_k_accuracy(self.logits, self.target, 3).item() == pytest.approx(1.0)
        with pytest.raises(ValueError, match="k"):
            metrics.top_k_accuracy(self.logits, self.target, 0)

    def test_close_enough_and_gap(self):
        # Row 1 is 0.1 below its max, row 2 0.15 below; row 0 is correct, row 3 ignored.
        probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.5, 0.4], [0.25, 0.3, 0.45], [1.0, 0.0, 0.0]])
        assert metrics.close_enough_accuracy(probs, self.target, 0.05).item() == pytest.approx(1 / 3)
        assert metrics.close_enough_accuracy(probs, self.target, 0.12).item() == pytest.approx(2 / 3)
        assert metrics.close_enough_accuracy(probs, self.target, 0.2).item() == pytest.approx(1.0)
        torch.testing.assert_close(metrics.misclassification_gap(probs, self.target), torch.tensor([-0.1, -0.15]))
