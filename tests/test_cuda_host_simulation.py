"""The CUDA driver's per-row code, run on the host, against the CPU driver.

tests/cuda_simulation/ compiles csrc/cuda/row_loss_driver.cuh's host-device phases into a host
simulation of the kernels (each rank of a warp or block in turn, the group reductions replayed in
the kernels' order) and runs it through the production op layer, beside the CPU driver. The probe
losses (probe_losses.h) expose every statistic the drivers gather, so every RowNeeds flag is
compared, including those no shipped loss uses yet. This is no substitute for running the kernels
on a GPU (it does not see the device's code generation, __expf, memory ordering or launch limits);
it checks the algorithm: chunking and alignment, the online softmax, the combination order, and
the +-inf/NaN semantics. It needs a CUDA build of torch and nvcc (about two minutes to compile).
"""

import os
from pathlib import Path

import pytest
import torch
from torch.utils import cpp_extension

from conftest import assert_close

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "tests" / "cuda_simulation"

pytestmark = pytest.mark.skipif(
    torch.version.cuda is None or cpp_extension.CUDA_HOME is None,
    reason="the CUDA driver's host simulation needs a CUDA build of torch and nvcc",
)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
GROUP_SIZES = [32, 128, 512]  # the warp-per-row kernel, and blocks of the block-per-row kernel
LAYOUTS = ["contiguous", "offset", "strided"]
NUM_STATISTICS = 14  # probe_losses.h: value() returns statistic 0 .. 13
MAX_LOGIT = 0  # the CPU driver's max of a row holding NaN is unspecified (an unordered max)
TWO_SCALE = dict(params=[0.2], tensor_params=torch.tensor([1.5, 4.0, 2.0]))


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list or "8.0"  # nothing here runs on a device
    try:
        return cpp_extension.load(
            name="lossext_cuda_host_simulation",
            sources=[str(SOURCES / "harness.cpp"), str(SOURCES / "simulated_driver.cu")],
            extra_include_paths=[str(ROOT / "csrc")],
            extra_cflags=["-O1"],
            extra_cuda_cflags=["-O1", "--expt-relaxed-constexpr"],
            build_directory=str(tmp_path_factory.mktemp("cuda_host_simulation")),
        )
    finally:
        if arch_list is None:
            del os.environ["TORCH_CUDA_ARCH_LIST"]


def in_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x's values in another memory layout: rows starting one element past a 16-byte boundary
    ("offset"), or with a row stride of C + 3 so every row has its own misalignment ("strided")."""
    if layout == "contiguous":
        return x.clone()
    if layout == "offset":
        out = torch.empty(x.numel() + 1, dtype=x.dtype)[1:].view(x.shape)
    else:
        out = torch.empty(x.shape[0], x.shape[1] + 3, dtype=x.dtype)[:, 2:2 + x.shape[1]]
    out.copy_(x)
    return out


def special_rows(num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Rows that exercise the online softmax's edge cases and the max-other tie and NaN rules."""
    C = num_classes
    huge = 6e4 if dtype == torch.float16 else 1e30
    inf, nan = float("inf"), float("nan")
    g = torch.Generator().manual_seed(C)
    rows = []

    def row(values):
        rows.append(torch.as_tensor(values, dtype=torch.float64))

    base = lambda: torch.randn(C, generator=g, dtype=torch.float64) * 3  # noqa: E731
    r = base(); r[C // 2] = inf; row(r)
    r = base(); r[::3] = -inf; row(r)                      # -inf among finite logits, the target's included
    row(torch.full((C,), -inf))
    r = base(); r[C - 1] = nan; row(r)
    r = base(); r[0] = nan; r[C // 2] = nan; row(r)        # NaN at the first non-target index (target 1)
    r = base(); r[1] = nan; row(r)                         # NaN at the target
    r = base() * huge / 3; row(r)
    r = torch.full((C,), -inf); r[C // 2:] = torch.arange(C - C // 2, dtype=torch.float64); row(r)  # max grows late
    row(torch.full((C,), 0.5))                             # ties everywhere
    r = torch.linspace(-5, 5, C, dtype=torch.float64).flip(0); row(r)  # max at index 0
    r = base(); r[C - 1] = -inf; r[0] = huge; row(r)
    return torch.stack(rows).to(dtype)


def special_targets(num_classes: int) -> torch.Tensor:
    """Targets for special_rows: 0, 1, 2 in turn, and 1 where the NaN rows need it."""
    targets = [1 if i in (4, 5) else i % 3 for i in range(11)]
    return torch.tensor(targets).clamp(max=num_classes - 1)


def compare(sim, loss, group_size, dtype, input, target, weight, params, tensor_params=None, ignore_index=-100):
    """Forward (every reduction, with the fused gradients), forward_out in place and backward: the
    simulated CUDA driver against the CPU driver."""
    common = (weight, params, tensor_params, ignore_index)
    for reduction in (0, 1, 2):
        expected = sim.cpu_forward(loss, input, target, *common, reduction, True)
        actual = sim.simulated_forward(loss, group_size, input, target, *common, reduction, True)
        for name, a, e in zip(("loss", "gradient", "row_param_grads"), actual, expected):
            assert_close(a, e, dtype, msg=f"{loss} {name}, reduction {reduction}")
        no_grad_loss, empty, no_param_grads = sim.simulated_forward(loss, group_size, input, target, *common,
                                                                    reduction, False)
        assert empty.numel() == 0 and no_param_grads.numel() == 0
        assert_close(no_grad_loss, expected[0], dtype, msg=f"{loss} loss without gradient, reduction {reduction}")

        in_place = input.contiguous().clone()
        out_loss = sim.simulated_forward_out(loss, group_size, in_place, target, *common, reduction, in_place)
        assert_close(out_loss, expected[0], dtype, msg=f"{loss} forward_out loss, reduction {reduction}")
        assert_close(in_place, expected[1], dtype, msg=f"{loss} gradient written over the logits")

        g = torch.Generator().manual_seed(reduction)
        shape = (input.shape[0],) if reduction == 0 else ()
        grad_output = (torch.rand(shape, generator=g, dtype=torch.float64) + 0.5).to(dtype)
        expected = sim.cpu_backward(loss, grad_output, input, target, *common, reduction)
        actual = sim.simulated_backward(loss, group_size, grad_output, input, target, *common, reduction)
        for name, a, e in zip(("gradient", "row_param_grads"), actual, expected):
            assert_close(a, e, dtype, msg=f"{loss} backward {name}, reduction {reduction}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_classes", [1, 5, 37, 1000, 3001])
@pytest.mark.parametrize("group_size", GROUP_SIZES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_shipped_losses_match_the_cpu_driver(sim, dtype, num_classes, group_size, layout):
    g = torch.Generator().manual_seed(num_classes)
    rows = 6
    input = in_layout((torch.randn(rows, num_classes, generator=g, dtype=torch.float64) * 4).to(dtype), layout)
    target = torch.randint(0, num_classes, (rows,), generator=g)
    target[2] = -100
    weight = (torch.rand(num_classes, generator=g, dtype=torch.float64) + 0.1).to(dtype)
    compare(sim, "cross_entropy", group_size, dtype, input, target, None, [0.0, 0.0, 0.0])
    compare(sim, "cross_entropy", group_size, dtype, input, target.int(), weight, [0.1, 0.01, 0.0])
    # logit_softcap 3: the logits (4 sigma) reach the cap's flat part, so the slope 1 - (o'/c)^2 matters.
    compare(sim, "cross_entropy", group_size, dtype, input, target, weight, [0.1, 0.01, 3.0])
    if num_classes <= 255:
        compare(sim, "cross_entropy", group_size, dtype, input, target.clamp(min=0).to(torch.uint8), weight,
                [0.2, 0.0, 0.0],
                ignore_index=3)

    probabilities = torch.rand(rows, num_classes, generator=g, dtype=torch.float64).softmax(1).to(dtype)
    compare(sim, "cross_entropy_probabilities", group_size, dtype, input, probabilities, None, [0.0, 0.0, 0.0])
    compare(sim, "cross_entropy_probabilities", group_size, dtype, input, probabilities, weight, [0.1, 0.01, 0.0])
    compare(sim, "cross_entropy_probabilities", group_size, dtype, input, probabilities, None, [0.0, 0.0, 3.0])
    compare(sim, "two_scale_cross_entropy", group_size, dtype, input, target, weight, **TWO_SCALE)


# Every shipped class-index loss with its params (the op's params list) and tensor params.
SHIPPED_LOSSES = {
    "cross_entropy": dict(params=[0.1, 0.01, 3.0]),
    "hinge": dict(params=[2.0, 0.5]),
    "hinge_fractional_p": dict(loss="hinge", params=[1.5, 0.3]),
    "l1": dict(params=[]),
    "l2": dict(params=[]),
    "logistic": dict(params=[]),
    "expectation": dict(params=[]),
    "regularized_expectation": dict(params=[]),
    "chebyshev": dict(params=[]),
    "squared_log": dict(params=[]),
    "tanimoto": dict(params=[]),
    "cauchy_schwarz": dict(params=[]),
    "alpha_loss": dict(params=[2.0]),
    "alpha_loss_below_one": dict(loss="alpha_loss", params=[0.5]),
    "two_scale_cross_entropy": TWO_SCALE,
}
# Row lengths at the launcher's boundaries: a warp per row up to 1024 classes, then blocks of 128 threads
# up to 4096, 256 up to 16384, 512 beyond (cuda::row_group_threads).
BOUNDARY_CLASSES = [1, 33, 1024, 1025, 4096, 4097, 16384, 16385]


@pytest.mark.parametrize("case", sorted(SHIPPED_LOSSES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("num_classes", BOUNDARY_CLASSES)
def test_every_shipped_loss_at_the_launchers_row_lengths(sim, case, dtype, num_classes):
    """Each loss with the group the launcher gives its row length (group size 0), rows in the "offset"
    layout, class weights, one ignored row; and once a block of 256 threads whatever the length."""
    spec = dict(SHIPPED_LOSSES[case])
    loss = spec.pop("loss", case)
    g = torch.Generator().manual_seed(num_classes)
    rows = 4
    input = in_layout((torch.randn(rows, num_classes, generator=g, dtype=torch.float64) * 3).to(dtype), "offset")
    target = torch.randint(0, num_classes, (rows,), generator=g)
    target[1] = -100
    weight = (torch.rand(num_classes, generator=g, dtype=torch.float64) + 0.1).to(dtype)
    for group_size in (0, 256):
        compare(sim, loss, group_size, dtype, input, target, weight, **spec)


@pytest.mark.parametrize("case", sorted(SHIPPED_LOSSES))
def test_every_shipped_loss_on_an_all_ignored_batch(sim, case):
    """Every row ignored: a zero loss for "none" and "sum", mean's 0/0 as the CPU driver has it, zero gradients."""
    spec = dict(SHIPPED_LOSSES[case])
    loss = spec.pop("loss", case)
    input = torch.randn(3, 40, dtype=torch.float32)
    target = torch.full((3,), -100)
    for group_size in (0, 128):
        compare(sim, loss, group_size, torch.float32, input, target, None, **spec)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_classes", [2, 9, 40, 1500])
@pytest.mark.parametrize("group_size", GROUP_SIZES)
def test_special_values_match_the_cpu_driver(sim, dtype, num_classes, group_size):
    input = in_layout(special_rows(num_classes, dtype), "offset")
    rows = input.shape[0]
    target = special_targets(num_classes)
    weight = torch.linspace(0.5, 2, num_classes, dtype=torch.float64).to(dtype)
    compare(sim, "cross_entropy", group_size, dtype, input, target, None, [0.0, 0.0, 0.0])
    compare(sim, "cross_entropy", group_size, dtype, input, target, weight, [0.1, 0.01, 0.0])
    compare(sim, "cross_entropy", group_size, dtype, input, target, weight, [0.1, 0.01, 3.0])
    probabilities = torch.rand(rows, num_classes, dtype=torch.float64).softmax(1).to(dtype)
    compare(sim, "cross_entropy_probabilities", group_size, dtype, input, probabilities, weight, [0.1, 0.01, 0.0])
    compare(sim, "two_scale_cross_entropy", group_size, dtype, input, target, None, **TWO_SCALE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_classes", [1, 2, 9, 40, 1500])
@pytest.mark.parametrize("group_size", GROUP_SIZES)
@pytest.mark.parametrize("probe", ["index_probe", "dense_probe", "scaled_probe"])
def test_every_statistic_matches_the_cpu_driver(sim, dtype, num_classes, group_size, probe):
    random_rows = (torch.randn(4, num_classes, dtype=torch.float64) * 3).to(dtype)
    random_targets = torch.randint(0, num_classes, (4,))
    if num_classes == 1:
        rows, targets = random_rows, random_targets
    else:
        rows = torch.cat([random_rows, special_rows(num_classes, dtype)])
        targets = torch.cat([random_targets, special_targets(num_classes)])
    input = in_layout(rows, "strided")
    weight = torch.linspace(0.5, 2, num_classes, dtype=torch.float64).to(dtype)
    tensor_params = torch.tensor([0.7, 1.9]) if probe == "scaled_probe" else None
    if probe == "dense_probe":
        target = torch.rand(input.shape, dtype=torch.float64).softmax(1).to(dtype)
    else:
        target = targets
        target[3] = -100
    # With a NaN in the row the CPU driver's max, and so the probes' NaN-free gradient terms
    # exp(s (o_j - max)), are unspecified; every other statistic is NaN on both sides.
    nan_rows = input.isnan().any(1)
    for statistic in range(NUM_STATISTICS):
        for special_index_used in (0.0, 1.0):
            params = [0.0, float(statistic), special_index_used]
            expected = sim.cpu_forward(probe, input, target, weight, params, tensor_params, -100, 0, True)
            actual = sim.simulated_forward(probe, group_size, input, target, weight, params, tensor_params, -100,
                                           0, True)
            compared = ~nan_rows if statistic == MAX_LOGIT else slice(None)
            assert_close(actual[0][compared], expected[0][compared], dtype, msg=f"statistic {statistic}")
            assert_close(actual[1][~nan_rows], expected[1][~nan_rows], dtype,
                         msg=f"gradient, special index used {special_index_used}")
            assert_close(actual[2], expected[2], dtype, msg="row_param_grads")
