"""The row losses' block ops: statistics of blocks of classes, combined in any order, give the one-shot op.

For every loss, the classes of each row are split into blocks (one, two, three, uneven ones with
blocks of one class and a block that holds no row's target, targets at block edges); each block's
statistics are gathered on their own (`<name>_block_statistics`), combined in a shuffled order (all
at once, one block at a time, or as between processes: a max of the MAX parts, each block rebased,
a sum of the SUM parts), and each block's loss and gradient computed from the combination. The
result is compared with the one-shot `<name>_forward` / `<name>_backward` in the same dtype.

Tolerances: float64 to rounding, rtol 1e-12 and atol 1e-14: a split changes only the summation
order and multiplies each block's exp sums by exp(s (r_b - r)) (one more rounding), so each
statistic moves by a few ulp (2^-52) per term, C = 23 terms here, and the losses' formulas are
well conditioned on these rows (measured: at most 1e-14 relative). float32 and bfloat16: conftest's
tolerances (the one-shot op's error against float64 is of the same size, and both round the
gradient to the dtype).
"""

import math

import pytest
import torch

import lossext
from conftest import assert_close, tolerance
from lossext.losses.row_statistics import blockwise_row_loss, statistics_layout
from lossext.losses.ops import ROW_LOSS_NAMES

# Each row-loss op with the fixed and learnable params its block ops run with (dense: probability targets).
OP_CASES = {
    "cross_entropy": dict(params=[0.1, 0.01, 4.0], dense=False),
    "cross_entropy_probabilities": dict(params=[0.1, 0.01, 4.0], dense=True),
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
    "logistic": dict(params=[], dense=False),
}


def test_every_row_loss_has_a_block_case():
    assert set(OP_CASES) == set(ROW_LOSS_NAMES)

pytestmark = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")

C = 23
SPLITS = {
    "one": [0, C],
    "two": [0, 11, C],
    "three": [0, 8, 16, C],
    # Blocks of one class ([0, 1), [1, 2)); [9, 15) holds no row's target (TARGETS).
    "uneven": [0, 1, 2, 9, 15, C],
}
# Targets at block edges (0, 1, 8, 15, 22) and an ignored row.
TARGETS = [0, 1, 8, -100, 15, 22, 4]
FLOAT64_TOLERANCE = dict(rtol=1e-12, atol=1e-14)
COMBINE_MODES = ["combine", "pairwise", "rebase"]


def op(name, kind):
    return getattr(torch.ops.lossext, f"{name}_{kind}").default


def shuffled(count, seed):
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


def assert_matches(actual, expected, dtype, msg):
    if dtype == torch.float64:
        torch.testing.assert_close(actual, expected, equal_nan=True, msg=lambda m: f"{msg}: {m}",
                                   **FLOAT64_TOLERANCE)
    else:
        assert_close(actual, expected, dtype, msg=msg)


def loss_inputs(name, dtype, targets=TARGETS, seed=0):
    """Logits, target, class weights and tensor params of `name`, as test_ops.OP_CASES describes it."""
    case = OP_CASES[name]
    g = torch.Generator().manual_seed(seed)
    rows = len(targets)
    input = (torch.randn(rows, C, generator=g, dtype=torch.float64) * 3).to(dtype)
    if case["dense"]:
        target = torch.rand(rows, C, generator=g, dtype=torch.float64).softmax(1).to(dtype)
    else:
        target = torch.tensor(targets)
    weight = (torch.rand(C, generator=g, dtype=torch.float64) + 0.2).to(dtype)
    tensor_params = torch.tensor(case["tensor_params"], dtype=dtype) if "tensor_params" in case else None
    return input, target, weight, case["params"], tensor_params


def compare_with_one_shot(name, dtype, input, target, weight, params, tensor_params, boundaries, order, mode,
                          reduction, ignore_index=-100):
    """The blockwise loss, gradient and tensor-param gradient against the one-shot op's, for an upstream
    gradient of one (forward) and a random one (backward)."""
    loss, grad, row_param_grads = op(name, "forward")(input, target, weight, params, tensor_params, ignore_index,
                                                      reduction, True)
    got_loss, got_grad, got_param_grad = blockwise_row_loss(name, input, target, weight, params, tensor_params,
                                                            ignore_index, reduction, boundaries, order, mode)
    assert_matches(got_loss, loss, dtype, f"{name} loss")
    assert_matches(got_grad, grad, dtype, f"{name} gradient")
    if tensor_params is not None:
        assert_matches(got_param_grad, row_param_grads.sum(0), dtype, f"{name} tensor-param gradient")

    shape = (input.shape[0],) if reduction == 0 else ()
    grad_output = (torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5).to(dtype)
    grad, row_param_grads = op(name, "backward")(grad_output, input, target, weight, params, tensor_params,
                                                 ignore_index, reduction)
    _, got_grad, got_param_grad = blockwise_row_loss(name, input, target, weight, params, tensor_params,
                                                     ignore_index, reduction, boundaries, order, mode,
                                                     grad_output=grad_output)
    assert_matches(got_grad, grad, dtype, f"{name} gradient with an upstream gradient")
    if tensor_params is not None:
        assert_matches(got_param_grad, row_param_grads.sum(0), dtype, f"{name} tensor-param gradient, upstream")


@pytest.mark.parametrize("name", sorted(OP_CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("split", sorted(SPLITS))
@pytest.mark.parametrize("reduction", [0, 1, 2])
@pytest.mark.parametrize("mode", COMBINE_MODES)
def test_blocks_give_the_one_shot_op(name, dtype, split, reduction, mode):
    input, target, weight, params, tensor_params = loss_inputs(name, dtype)
    boundaries = SPLITS[split]
    order = shuffled(len(boundaries) - 1, seed=len(boundaries))
    for class_weight in (None, weight):
        compare_with_one_shot(name, dtype, input, target, class_weight, params, tensor_params, boundaries, order,
                              mode, reduction)


@pytest.mark.parametrize("name", sorted(OP_CASES))
@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_all_ignored_batch(name, reduction):
    if OP_CASES[name]["dense"]:
        pytest.skip("probability targets have no ignore_index")
    input, target, weight, params, tensor_params = loss_inputs(name, torch.float64, targets=[-100] * 4)
    compare_with_one_shot(name, torch.float64, input, target, weight, params, tensor_params, SPLITS["three"],
                          [2, 0, 1], "combine", reduction)
    loss, grad, _ = blockwise_row_loss(name, input, target, weight, params, tensor_params, -100, reduction,
                                       SPLITS["three"])
    assert torch.equal(grad, torch.zeros_like(grad))
    if reduction == 1:
        assert math.isnan(loss.item())  # 0/0, as F.cross_entropy
    else:
        assert torch.equal(loss, torch.zeros_like(loss))


def special_value_rows(dtype):
    """Rows with -inf logits (a whole block [2, 9) of them; the target's; all of them) and a row whose max is +inf."""
    g = torch.Generator().manual_seed(3)
    inf = float("inf")
    rows = (torch.randn(6, C, generator=g, dtype=torch.float64) * 3)
    rows[0, 2:9] = -inf
    rows[1, 10] = inf
    rows[2, 4] = -inf
    rows[3] = -inf
    rows[4, ::3] = -inf
    rows[5, 2:9] = -inf
    rows[5, 0] = 40.0
    return rows.to(dtype), torch.tensor([0, 3, 4, 1, 22, 12])


@pytest.mark.parametrize("name", sorted(OP_CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_special_values(name, dtype):
    input, target = special_value_rows(dtype)
    _, dense_target, weight, params, tensor_params = loss_inputs(name, dtype, targets=target.tolist())
    if OP_CASES[name]["dense"]:
        target = dense_target
    for boundaries in (SPLITS["uneven"], [0, 2, 9, C]):
        compare_with_one_shot(name, dtype, input, target, weight, params, tensor_params, boundaries,
                              shuffled(len(boundaries) - 1, seed=5), "rebase", 2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("split", ["one", "uneven"])
def test_two_scale_negative_scale_does_not_overflow(dtype, split):
    """A learnable scale that turns negative: the exp sums are taken at min o, so no exp(s (o - max)) overflows
    (logits spanning 200 with s = -0.75 would reach exp(150)); the one-shot op and the blocks agree with the
    reference, whose -inf logits are excluded classes whatever the sign of s."""
    g = torch.Generator().manual_seed(4)
    input = (torch.randn(7, C, generator=g, dtype=torch.float64) * 60)
    input[0, 3] = -float("inf")
    input = input.to(dtype)
    target = torch.tensor(TARGETS)
    tensor_params = torch.tensor([-1.5, 4.0, 2.0], dtype=dtype)
    params = [0.2]
    for reduction in (0, 1, 2):
        compare_with_one_shot("two_scale_cross_entropy", dtype, input, target, None, params, tensor_params,
                              SPLITS[split], shuffled(len(SPLITS[split]) - 1, seed=6), "rebase", reduction)

    x = input.double().requires_grad_(True)
    scales = tensor_params.double().requires_grad_(True)
    expected = lossext.reference.two_scale_cross_entropy(x, target, scales[0], scales[1], params[0], scales[2],
                                                         reduction="sum")
    expected_grad, expected_scale_grad = torch.autograd.grad(expected, (x, scales))
    loss, grad, scale_grad = blockwise_row_loss("two_scale_cross_entropy", input, target, None, params, tensor_params,
                                                -100, 2, SPLITS[split])
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    tol = tolerance(dtype)
    torch.testing.assert_close(loss.double(), expected.detach(), rtol=tol.rtol, atol=tol.atol)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=tol.rtol, atol=tol.atol)
    torch.testing.assert_close(scale_grad.double(), expected_scale_grad, rtol=tol.rtol, atol=1e-4)


def test_statistics_layout():
    """MAX-combined fields first; one packed row per input row; the index tensor for max-other losses only."""
    max_names = {"max_logit", "negated_min_logit", "max_other_logit"}
    for name in sorted(OP_CASES):
        max_fields, names, with_index = statistics_layout(name)
        assert set(names[:max_fields]) <= max_names and not set(names[max_fields:]) & max_names, name
        assert not with_index, f"{name}: no shipped loss's gradient reads the max-other class"
        input, target, weight, params, tensor_params = loss_inputs(name, torch.float32)
        statistics, index = op(name, "block_statistics")(input, target, weight, params, tensor_params, 0, C, -100)
        assert statistics.shape == (input.shape[0], len(names)) and statistics.dtype == torch.float32
        assert index.shape == (0,)
    assert statistics_layout("two_scale_cross_entropy")[1] == (
        "max_logit", "negated_min_logit", "max_other_logit", "sum_exp_0", "exp_weighted_sum_0", "sum_exp_1",
        "exp_weighted_sum_1", "target_logit", "target_weight")


def test_block_statistics_of_the_target_and_the_other_blocks():
    """The target's logit and weight come from its block alone; max-other leaves the target out."""
    input, _, weight, _, _ = loss_inputs("two_scale_cross_entropy", torch.float64)
    target = torch.tensor([12] * input.shape[0])
    names = statistics_layout("two_scale_cross_entropy")[1]
    blocks = {}
    for begin, end in ((0, 10), (10, C)):
        blocks[begin] = op("two_scale_cross_entropy", "block_statistics")(
            input[:, begin:end], target, weight[begin:end], [0.2], torch.tensor([1.5, 4.0, 2.0]), begin, C, -100)
    holding, other = blocks[10][0], blocks[0][0]
    assert torch.equal(holding[:, names.index("target_logit")], input[:, 12])
    assert torch.equal(holding[:, names.index("target_weight")], weight[12].expand(input.shape[0]))
    assert torch.equal(other[:, names.index("target_logit")], torch.zeros(input.shape[0], dtype=torch.float64))
    others = input.clone()
    others[:, 12] = -float("inf")
    max_other = names.index("max_other_logit")
    assert torch.equal(holding[:, max_other], others[:, 10:].amax(1))
    assert torch.equal(other[:, max_other], others[:, :10].amax(1))


def test_combination_is_exact_in_the_max_part_for_every_order():
    input, target, weight, params, tensor_params = loss_inputs("two_scale_cross_entropy", torch.float32)
    name = "two_scale_cross_entropy"
    boundaries = SPLITS["uneven"]
    parts = [op(name, "block_statistics")(input[:, b:e], target, weight[b:e], params, tensor_params, b, C, -100)
             for b, e in zip(boundaries[:-1], boundaries[1:])]
    max_fields = statistics_layout(name)[0]
    results = []
    for seed in range(4):
        order = shuffled(len(parts), seed)
        results.append(op(name, "combine_statistics")([parts[i][0] for i in order], [parts[i][1] for i in order],
                                                      tensor_params))
    whole = op(name, "block_statistics")(input, target, weight, params, tensor_params, 0, C, -100)
    for statistics, _ in results:
        assert torch.equal(statistics[:, :max_fields], whole[0][:, :max_fields])
        assert_close(statistics, whole[0], torch.float32)


def test_bad_arguments_raise_errors_that_name_them():
    input, target, weight, params, _ = loss_inputs("cross_entropy", torch.float32)
    statistics_op = op("cross_entropy", "block_statistics")
    with pytest.raises(RuntimeError, match="class_offset"):
        statistics_op(input, target, weight, params, None, 5, C, -100)
    with pytest.raises(IndexError, match="out of bounds"):
        statistics_op(input[:, :4], torch.tensor([0, 1, 2, 3, 4, 5, 23]), None, params, None, 0, C, -100)
    statistics, index = statistics_op(input, target, weight, params, None, 0, C, -100)
    with pytest.raises(RuntimeError, match="statistics must have shape"):
        op("cross_entropy", "combine_statistics")([statistics, statistics[:, :2]], [index, index], None)
    with pytest.raises(RuntimeError, match="max_other_index"):
        op("cross_entropy", "combine_statistics")([statistics], [torch.zeros(7, dtype=torch.long)], None)
    with pytest.raises(RuntimeError, match="max_statistics"):
        op("cross_entropy", "rebase_statistics")(statistics, statistics, None)
    two_scale = op("two_scale_cross_entropy", "block_statistics")(input, target, None, [0.2],
                                                                   torch.tensor([1.5, 4.0, 2.0]), 0, C, -100)
    with pytest.raises(RuntimeError, match="tensor_params"):
        op("two_scale_cross_entropy", "combine_statistics")([two_scale[0]], [two_scale[1]], None)
    with pytest.raises(RuntimeError, match="grad_output"):
        op("cross_entropy", "block_loss_and_gradient")(input, target, weight, params, None, statistics, index, 0, C,
                                                       -100, 0, None, torch.ones(3), True)


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_opcheck(name):
    input, target, weight, params, tensor_params = loss_inputs(name, torch.float32)
    tensor_params = None if tensor_params is None else tensor_params.float()
    parts = []
    for begin, end in ((0, 9), (9, C)):
        block_target = target[:, begin:end] if target.dim() == 2 else target
        args = (input[:, begin:end].contiguous(), block_target.contiguous(), weight[begin:end].contiguous(), params,
                tensor_params, begin, C, -100)
        torch.library.opcheck(op(name, "block_statistics"), args)
        parts.append(op(name, "block_statistics")(*args))
    statistics = [p[0] for p in parts]
    indices = [p[1] for p in parts]
    torch.library.opcheck(op(name, "combine_statistics"), (statistics, indices, tensor_params))
    combined, combined_index = op(name, "combine_statistics")(statistics, indices, tensor_params)
    max_part = combined[:, :statistics_layout(name)[0]].contiguous()
    torch.library.opcheck(op(name, "rebase_statistics"), (statistics[0], max_part, tensor_params))
    block_target = target[:, :9].contiguous() if target.dim() == 2 else target
    for reduction, grad_output in ((0, torch.rand(input.shape[0])), (1, None), (2, torch.rand(()))):
        for compute_grad in (False, True):
            torch.library.opcheck(op(name, "block_loss_and_gradient"),
                                  (input[:, :9].contiguous(), block_target, weight[:9].contiguous(), params,
                                   tensor_params, combined, combined_index, 0, C, -100, reduction, None, grad_output,
                                   compute_grad))
