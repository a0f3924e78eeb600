"""The bad-input battery (issue 13, item 5): every argument PyTorch rejects or treats differently, on both backends.

Each rejection raises the exception type torch.nn.functional raises for that argument (checked against F
where F rejects the same call) with a message that names the function and the argument. Where F accepts a
call, lossext gives F's result (or, for three values F silently replaces, rejects them, documented below).
"""

import math
import re
import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext
from lossext.testing.loss_info import LOSSES

X = torch.randn(4, 5)
T = torch.tensor([0, 1, 2, 3])
LOSS_IDS = [pytest.param(loss, id=loss.name) for loss in LOSSES]


def call_loss(loss, input, target, **options):
    """lossext.<loss> with the entry's first parameter set (its tensor params as floats) and `options`."""
    return loss.function(input, target, **loss.param_sets[0], **loss.tensor_params, **options)


def raises(exception, match, call, native=None):
    """call() raises `exception` matching `match`; native(), F's same call where it has one, raises the same type."""
    with pytest.raises(exception, match=match):
        call()
    if native is not None:
        with pytest.raises(exception):
            native()


# ---- F.cross_entropy's arguments. ----


@pytest.mark.parametrize("value", [1.5, math.inf])
def test_label_smoothing_above_one(backend, value):
    raises(RuntimeError, r"cross_entropy: label_smoothing must be between 0\.0 and 1\.0, got",
           lambda: lossext.cross_entropy(X, T, label_smoothing=value),
           lambda: F.cross_entropy(X, T, label_smoothing=value))


@pytest.mark.parametrize("value", [-0.1, math.nan])
def test_label_smoothing_below_zero_or_nan_is_rejected(backend, value):
    # F.cross_entropy documents [0, 1] but silently uses 0 for a negative or NaN value; lossext rejects them with
    # the error F gives above 1.
    raises(RuntimeError, "cross_entropy: label_smoothing must be between", lambda: lossext.cross_entropy(
        X, T, label_smoothing=value))
    raises(RuntimeError, "cross_entropy: label_smoothing", lambda: lossext.cross_entropy(
        X, torch.rand(4, 5), label_smoothing=value))


def test_label_smoothing_tensor(backend):
    raises(TypeError, "label_smoothing must be a float, got a tensor: label_smoothing is not differentiable",
           lambda: lossext.cross_entropy(X, T, label_smoothing=torch.tensor(0.1, requires_grad=True)),
           lambda: F.cross_entropy(X, T, label_smoothing=torch.tensor(0.1, requires_grad=True)))


@pytest.mark.parametrize("reduction", ["avg", None, 1])
def test_reduction_names_the_function_and_the_valid_values(backend, reduction):
    raises(ValueError, r"cross_entropy: .* is not a valid value for reduction: expected 'none', 'mean' or 'sum'",
           lambda: lossext.cross_entropy(X, T, reduction=reduction), lambda: F.cross_entropy(X, T, reduction=reduction))
    raises(ValueError, r"^hinge: .*reduction", lambda: lossext.hinge(X, T, reduction=reduction))


def test_elementwise_mean_is_the_deprecated_mean(backend):
    with pytest.warns(UserWarning, match="elementwise_mean"):
        loss = lossext.cross_entropy(X, T, reduction="elementwise_mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(loss, F.cross_entropy(X, T, reduction="elementwise_mean"))


@pytest.mark.parametrize("value,exception", [(2**63, ValueError), (-2**63 - 1, ValueError), (1.5, TypeError),
                                             (True, TypeError), ("1", TypeError)])
def test_ignore_index_type_and_range(backend, value, exception):
    raises(exception, "cross_entropy: ignore_index must", lambda: lossext.cross_entropy(X, T, ignore_index=value),
           lambda: F.cross_entropy(X, T, ignore_index=value))
    raises(exception, "l2: ignore_index must", lambda: lossext.l2(X, T, ignore_index=value))


def test_ignore_index_of_an_integer_tensor_works_as_in_F(backend):
    torch.testing.assert_close(lossext.cross_entropy(X, T, ignore_index=torch.tensor(2)),
                               F.cross_entropy(X, T, ignore_index=torch.tensor(2)))


@pytest.mark.parametrize("weight", [[1.0] * 5, 2.0])
def test_weight_that_is_not_a_tensor(backend, weight):
    raises(TypeError, "cross_entropy: weight must be a tensor or None, got", lambda: lossext.cross_entropy(
        X, T, weight=weight), lambda: F.cross_entropy(X, T, weight=weight))


def test_target_out_of_range_gives_the_class_count(backend):
    for target in (torch.tensor([0, 1, 5, 3]), torch.tensor([0, -1, 2, 3])):
        raises(IndexError, r"Target -?\d is out of bounds: a class index must be in \[0, 5\) for 5 classes, or "
                           r"ignore_index \(-100\)", lambda: lossext.cross_entropy(X, target),
               lambda: F.cross_entropy(X, target))


def test_probability_target_of_a_class_index_loss(backend):
    for name in ("tanimoto", "hinge", "expectation"):
        raises(RuntimeError, f"{name}: target must hold class indices .*{name} takes no class probabilities",
               lambda: getattr(lossext, name)(X, torch.rand(4, 5)))
    raises(RuntimeError, "two_scale_cross_entropy takes no class probabilities",
           lambda: lossext.two_scale_cross_entropy(X, torch.rand(4, 5), 1.0, 2.0, 0.5))


def test_float_target_of_another_shape(backend):
    raises(RuntimeError, re.escape("or class probabilities of the input's shape [4, 5]; got torch.float32 of "
                                   "shape [4, 6]"), lambda: lossext.cross_entropy(X, torch.rand(4, 6)),
           lambda: F.cross_entropy(X, torch.rand(4, 6)))


@pytest.mark.parametrize("target_dtype", [torch.float64, torch.float16])
def test_probability_target_dtype_promotes_as_in_F(backend, target_dtype):
    # F computes -sum q log_softmax(x) in the promoted dtype: a float64 target makes the loss float64.
    x = torch.randn(4, 5, requires_grad=True)
    q = torch.rand(4, 5).to(target_dtype)
    ours, theirs = lossext.cross_entropy(x, q), F.cross_entropy(x, q)
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs)
    (grad,) = torch.autograd.grad(ours, x)
    assert grad.dtype == torch.float32
    torch.testing.assert_close(grad, torch.autograd.grad(theirs, x)[0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_no_classes(backend, reduction):
    # C = 0: F gives NaN for the mean, 0 for the sum, zeros for none; a target that is not ignored is an IndexError.
    for rows in (0, 2):
        x = torch.empty(rows, 0, requires_grad=True)
        target = torch.full((rows,), -100)
        ours, theirs = lossext.cross_entropy(x, target, reduction=reduction), F.cross_entropy(x, target,
                                                                                             reduction=reduction)
        torch.testing.assert_close(ours, theirs, equal_nan=True)
        torch.testing.assert_close(lossext.hinge(x, target, reduction=reduction), theirs, equal_nan=True)
        ours.sum().backward()
        assert x.grad.shape == x.shape
    raises(IndexError, "out of bounds",
           lambda: lossext.cross_entropy(torch.empty(2, 0), torch.zeros(2, dtype=torch.long)),
           lambda: F.cross_entropy(torch.empty(2, 0), torch.zeros(2, dtype=torch.long)))


# ---- Every loss's common arguments (the op-info table's losses: a new loss is covered by its entry). ----


@pytest.mark.parametrize("loss", LOSS_IDS)
def test_every_loss_rejects_bad_common_arguments(backend, loss):
    raises(ValueError, rf"^{loss.name}: 'avg' is not a valid value for reduction",
           lambda: call_loss(loss, X, T, reduction="avg"))
    raises(TypeError, f"{loss.name}: ignore_index must be an int, got float",
           lambda: call_loss(loss, X, T, ignore_index=1.5))
    raises(ValueError, f"{loss.name}: ignore_index must fit in int64",
           lambda: call_loss(loss, X, T, ignore_index=2**63))
    raises(TypeError, f"{loss.name}: weight must be a tensor or None, got list",
           lambda: call_loss(loss, X, T, weight=[1.0] * 5))
    raises(IndexError, r"Target 5 is out of bounds: a class index must be in \[0, 5\) for 5 classes",
           lambda: call_loss(loss, X, torch.tensor([0, 1, 5, 3])))
    if not loss.supports_probabilities:
        raises(RuntimeError, f"{loss.name}: target must hold class indices .*{loss.name} takes no class "
                             "probabilities", lambda: call_loss(loss, X, torch.rand(4, 5)))


@pytest.mark.parametrize("loss", LOSS_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_loss_with_no_classes_is_as_F(backend, loss, reduction):
    # C = 0 with every row ignored: F.cross_entropy's NaN mean, 0 sum and zeros for none, and an empty gradient.
    x = torch.empty(2, 0, requires_grad=True)
    target = torch.full((2,), -100)
    ours = call_loss(loss, x, target, reduction=reduction)
    torch.testing.assert_close(ours, F.cross_entropy(x, target, reduction=reduction), equal_nan=True)
    ours.sum().backward()
    assert x.grad.shape == x.shape


# ---- The other losses' parameters. ----


def test_alpha_tensor_is_not_differentiable(backend):
    raises(TypeError, "alpha_loss: alpha must be a float, got a tensor: alpha is not differentiable",
           lambda: lossext.alpha_loss(X, T, torch.tensor(0.5, requires_grad=True)))
    raises(TypeError, "alpha_loss: alpha must be a float", lambda: lossext.alpha_loss(X, T, "2"))


@pytest.mark.parametrize("argument,value", [("r1", -1.0), ("r2", 0.0), ("norm", 0.0), ("norm", -1.0), ("r1", math.inf),
                                            ("r2", math.nan)])
def test_two_scale_scales_are_positive_and_finite(backend, argument, value):
    arguments = dict(r1=1.0, r2=2.0, eta=0.5, norm=None)
    arguments[argument] = value
    raises(ValueError, f"two_scale_cross_entropy: {argument} must be positive and finite",
           lambda: lossext.two_scale_cross_entropy(X, T, **arguments))
    raises(ValueError, f"two_scale_cross_entropy: {argument} must be positive and finite",
           lambda: lossext.reference.two_scale_cross_entropy(X, T, **arguments))


@pytest.mark.parametrize("argument", ["r1", "r2", "norm"])
def test_two_scale_tensor_scales_are_not_read(backend, argument):
    """A learnable scale's value is not read (a device sync on CUDA): a negative one is computed, as the
    reference computes it, on every device alike."""
    arguments = dict(r1=torch.tensor(1.0), r2=torch.tensor(2.0), eta=0.5, norm=torch.tensor(1.5))
    arguments[argument] = torch.tensor(-0.75)
    value = lossext.two_scale_cross_entropy(X.double(), T, **{k: v.double() if isinstance(v, torch.Tensor) else v
                                                               for k, v in arguments.items()})
    expected = lossext.reference.two_scale_cross_entropy(X.double(), T, **{
        k: v.double() if isinstance(v, torch.Tensor) else v for k, v in arguments.items()})
    torch.testing.assert_close(value, expected)
    raises(TypeError, f"two_scale_cross_entropy: {argument} must be a floating-point tensor",
           lambda: lossext.two_scale_cross_entropy(X, T, **{**arguments, argument: torch.tensor(1)}))


def test_two_scale_eta_is_a_number(backend):
    raises(ValueError, "two_scale_cross_entropy: eta must be a number, got NaN",
           lambda: lossext.two_scale_cross_entropy(X, T, 1.0, 2.0, math.nan))
    raises(TypeError, "two_scale_cross_entropy: eta must be a float, got a tensor",
           lambda: lossext.two_scale_cross_entropy(X, T, 1.0, 2.0, torch.tensor(0.5)))


def test_hinge_parameters_that_are_tensors(backend):
    raises(TypeError, "hinge: p must be a float, got a tensor", lambda: lossext.hinge(X, T, p=torch.tensor(2.0)))
    raises(TypeError, "hinge: margin must be a float, got str", lambda: lossext.hinge(X, T, margin="1"))


# ---- Activations. ----


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "selu", "silu", "gelu", "softmax"])
def test_integer_input_to_an_activation(backend, name):
    kwargs = dict(dim=0) if name == "softmax" else {}
    raises(NotImplementedError, f"lossext.{name}: input must be float32, float64, float16 or bfloat16, got torch.int64",
           lambda: getattr(lossext, name)(torch.ones(3, dtype=torch.int64), **kwargs),
           lambda: getattr(F, name)(torch.ones(3, dtype=torch.int64), **kwargs))


def test_integer_input_to_relu_is_rejected_too(backend):
    # F.relu and F.hardtanh compute in the integer dtype; the kernels have none: the losses' NotImplementedError.
    raises(NotImplementedError, "lossext.relu: input must be", lambda: lossext.relu(torch.ones(3, dtype=torch.int64)))
    raises(NotImplementedError, "lossext.hardtanh: input must be",
           lambda: lossext.hardtanh(torch.ones(3, dtype=torch.int64)))


@pytest.mark.parametrize("bounds", [(math.nan, 1.0), (-1.0, math.nan)])
def test_hardtanh_nan_bound(backend, bounds):
    # F.hardtanh accepts a NaN bound and returns NaN everywhere; lossext says which bound is not a number.
    raises(ValueError, r"lossext.hardtanh: min_val and max_val must be numbers, got min_val=", lambda: lossext.hardtanh(
        X, *bounds))
    raises(ValueError, "lossext.hardtanh: min_val and max_val must be numbers", lambda: lossext.nn.Hardtanh(*bounds))


def test_hardtanh_bounds_in_the_wrong_order(backend):
    raises(ValueError, r"lossext.hardtanh: min_val cannot be greater than max_val, got min_val=2.0, max_val=1.0",
           lambda: lossext.hardtanh(X, 2.0, 1.0), lambda: F.hardtanh(X, 2.0, 1.0))


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
def test_hardtanh_op_nan_bound():
    raises(RuntimeError, "hardtanh_forward: min_val and max_val must not be NaN",
           lambda: torch.ops.lossext.hardtanh_forward(X, math.nan, 1.0))
