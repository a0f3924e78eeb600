"""The vocabulary-parallel checks, run in every process of a torch.distributed group.

tests/test_distributed.py starts `world` processes of this script (one thread each) and reads the
JSON each writes: {case: null or the failure}. Every process draws the same whole logits from the
case's seed, takes its own slice of the classes, and compares lossext.distributed's value and
gradients with the single-process lossext op on the whole rows (to the dtype's tolerance, float64
to rounding) and with the float64 reference. Every case runs the same collectives in the same order
on every process; a comparison fails only after them, so one failing case cannot hang the others.

    python tests/distributed_cases.py RANK WORLD INIT_FILE OUT_DIR BACKEND
"""

import contextlib
import json
import os
import sys
import traceback
from datetime import timedelta
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lossext  # noqa: E402
import lossext.distributed as ldist  # noqa: E402
from conftest import tolerance  # noqa: E402
from lossext.testing.loss_info import LOSSES, LossInfo  # noqa: E402

DTYPES = (torch.float64, torch.float32, torch.bfloat16)
REDUCTIONS = ("mean", "sum", "none")
ROWS = 12
CLASSES = 507


def class_sizes(world: int, classes: int = CLASSES) -> List[int]:
    """Uneven slices: 300 classes and the rest over 2 processes; over 3, one holds a single class."""
    if world == 2:
        return [300, classes - 300]
    if world == 3:
        return [1, 300, classes - 301]
    return [classes // world + (rank < classes % world) for rank in range(world)]


class Context:
    def __init__(self, rank: int, world: int, device: torch.device):
        self.rank, self.world, self.device = rank, world, device

    def sizes(self, classes: int = CLASSES) -> List[int]:
        return class_sizes(self.world, classes)

    def my_classes(self, sizes: Sequence[int]) -> slice:
        offset = sum(sizes[:self.rank])
        return slice(offset, offset + sizes[self.rank])


class CollectiveCounter:
    """Counts torch.distributed's collectives (and the bytes all-reduced) while active."""

    def __init__(self):
        self.calls: List[str] = []
        self.all_reduce_bytes = 0

    @contextlib.contextmanager
    def active(self):
        originals = {name: getattr(dist, name) for name in ("all_reduce", "all_gather", "broadcast", "reduce_scatter",
                                                              "all_to_all", "all_gather_into_tensor")}

        def counting(name, original):
            def collective(tensor_or_list, *args, **kwargs):
                self.calls.append(name)
                if name == "all_reduce":
                    self.all_reduce_bytes += tensor_or_list.numel() * tensor_or_list.element_size()
                return original(tensor_or_list, *args, **kwargs)
            return collective

        for name, original in originals.items():
            setattr(dist, name, counting(name, original))
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(dist, name, original)


def close(actual, expected, dtype, what, scale=1.0):
    tol = tolerance(dtype)
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol.rtol, atol=tol.atol * scale,
                               equal_nan=True, msg=lambda m: f"{what}: {m}")


# Unit roundoff: half an ulp of 1, relative.
UNIT_ROUNDOFF = {torch.float64: 2.0**-53, torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8}


def within_dot_product_bound(actual, truth, magnitude, terms, dtype, what):
    """A sum of `terms` products computed in `dtype` against its float64 truth, within the classic bound
    |error| <= k sum_i |a_i b_i|, where k holds: the logits' gradient g within the loss's relative
    tolerance (checked by the loss tests); two roundings to the dtype (each process's or chunk's
    partial product, the result) and one ulp of a logit where the products' blocking differs, 3 u;
    and gamma_n = n u' of the accumulation (u' the accumulation dtype's unit roundoff: fp32 for half
    types), plus the dtype's absolute floor. A relative tolerance on the result would fail wherever the
    terms cancel, as sharding makes them do in partial sums."""
    accumulation = torch.float64 if dtype == torch.float64 else torch.float32
    k = tolerance(dtype).rtol + 3 * UNIT_ROUNDOFF[dtype] + terms * UNIT_ROUNDOFF[accumulation]
    bound = k * magnitude + tolerance(dtype).atol
    error = (actual.double() - truth).abs()
    worst = int((error - bound).argmax())
    assert bool((error <= bound).all()), (f"{what}: off by {error.flatten()[worst]:.3g} at {worst}, bound "
                                          f"{bound.flatten()[worst]:.3g} (value {truth.flatten()[worst]:.6g})")


def loss_arguments(info: LossInfo, dtype: torch.dtype, device, requires_grad: bool, param_set: int = 0) -> Dict:
    params = dict(info.param_sets[param_set])
    for key, value in info.tensor_params.items():
        params[key] = torch.tensor(value, dtype=torch.float64 if dtype == torch.float64 else torch.float32,
                                   device=device, requires_grad=requires_grad)
    return params


def draw(info: LossInfo, shape, dtype, device, seed: int, ignore_fraction=0.25):
    torch.manual_seed(seed)
    params = {**info.param_sets[0], **info.tensor_params}
    return info.draw(shape, dtype, device, params, ignore_fraction=ignore_fraction)


def check_loss(ctx: Context, info: LossInfo, dtype: torch.dtype, reduction: str, seed: int, *, weighted=False,
               shape=None, probabilities=False, target_override: Optional[Callable] = None,
               sizes: Optional[List[int]] = None, pass_sizes=True, param_set: int = 0):
    """lossext.distributed.<loss> of this process's slice against lossext.<loss> of the whole rows."""
    sizes = sizes or ctx.sizes()
    classes = sum(sizes)
    shape = shape or (ROWS, classes)
    whole, target = draw(info, shape, dtype, ctx.device, seed)
    if target_override is not None:
        target = target_override(target)
    torch.manual_seed(seed + 1)
    weight = (torch.rand(classes, dtype=torch.float64) + 0.5).to(dtype).to(ctx.device) if weighted else None
    if probabilities:
        target = torch.softmax(torch.randn(shape, dtype=torch.float64), dim=1).to(dtype).to(ctx.device)
    mine = ctx.my_classes(sizes)
    local = whole[:, mine].detach().clone().requires_grad_()
    local_target = target[:, mine] if probabilities else target
    local_weight = None if weight is None else weight[mine]
    upstream_shape = () if reduction != "none" else tuple(shape[:1]) + tuple(shape[2:])
    torch.manual_seed(seed + 2)
    upstream = (torch.rand(upstream_shape, dtype=torch.float64) + 0.5).to(dtype).to(ctx.device)

    sharded_params = loss_arguments(info, dtype, ctx.device, True, param_set)
    counter = CollectiveCounter()
    with counter.active():
        value = getattr(ldist, info.name)(local, local_target, weight=local_weight, reduction=reduction,
                                          class_sizes=sizes if pass_sizes else None, **sharded_params)
        forward_calls = list(counter.calls)
        (value * upstream).sum().backward()
    backward_calls = counter.calls[len(forward_calls):]

    single_params = loss_arguments(info, dtype, ctx.device, True, param_set)
    whole_leaf = whole.detach().clone().requires_grad_()
    expected = getattr(lossext, info.name)(whole_leaf, target, weight=weight, reduction=reduction, **single_params)
    (expected * upstream).sum().backward()
    truth_params = {key: (value.detach().double() if isinstance(value, torch.Tensor) else value)
                    for key, value in loss_arguments(info, torch.float64, ctx.device, False, param_set).items()}
    truth = getattr(lossext.reference, info.name)(whole.double(), target.double() if probabilities else target,
                                                  weight=None if weight is None else weight.double(),
                                                  reduction=reduction, **truth_params)

    # Rounding differs only in the order of the statistics' sums (float64: to rounding).
    name = f"{info.name} {dtype} {reduction}"
    close(value, expected, dtype, f"{name}: value against the single-process op")
    close(value, truth, dtype, f"{name}: value against the float64 reference")
    grad_scale = 1.0 / ROWS if reduction == "mean" else 1.0
    close(local.grad, whole_leaf.grad[:, mine], dtype, f"{name}: gradient of this process's slice", grad_scale)
    for key in info.tensor_params:
        close(sharded_params[key].grad, single_params[key].grad, dtype, f"{name}: d loss / d {key}")
    expected_all_reduces = 1 if lossext.losses.row_statistics.statistics_layout(info.name)[0] == 0 else 2
    expected_forward = ([] if pass_sizes else ["all_gather"]) + ["all_reduce"] * expected_all_reduces
    assert forward_calls == expected_forward, f"{name}: forward collectives {forward_calls}, expected {expected_forward}"
    assert backward_calls == [], f"{name}: backward ran collectives {backward_calls}"


def check_bytes_independent_of_classes(ctx: Context, info: LossInfo):
    """The bytes all-reduced per call depend on N and the loss's statistics, not on V."""
    totals = []
    for classes in (CLASSES, 4 * CLASSES):
        sizes = class_sizes(ctx.world, classes)
        torch.manual_seed(0)
        whole, target = draw(info, (ROWS, classes), torch.float32, ctx.device, 7)
        local = whole[:, ctx.my_classes(sizes)].clone().requires_grad_()
        counter = CollectiveCounter()
        with counter.active():
            getattr(ldist, info.name)(local, target, class_sizes=sizes,
                                      **loss_arguments(info, torch.float32, ctx.device, False)).backward()
        totals.append(counter.all_reduce_bytes)
    fields = len(lossext.losses.row_statistics.statistics_layout(info.name)[1])
    assert totals[0] == totals[1] == ROWS * fields * 4, \
        f"{info.name}: all-reduced {totals} bytes for V = {CLASSES}, {4 * CLASSES}; expected {ROWS * fields * 4}"


def check_label_smoothing(ctx: Context, dtype: torch.dtype):
    """Sharded label smoothing spreads eps over the global V (Megatron's bug: the local V)."""
    sizes = ctx.sizes()
    torch.manual_seed(3)
    whole = (torch.randn(ROWS, CLASSES, dtype=torch.float64) * 3).to(dtype)
    target = torch.randint(0, CLASSES, (ROWS,))
    local = whole[:, ctx.my_classes(sizes)]
    for smoothing in (0.1, 0.5, 1.0):
        value = ldist.cross_entropy(local, target, label_smoothing=smoothing, class_sizes=sizes)
        expected = F.cross_entropy(whole.double(), target, label_smoothing=smoothing)
        close(value, expected, dtype, f"label smoothing {smoothing} {dtype} against F.cross_entropy unsharded")


def check_all_ignored(ctx: Context, reduction: str):
    sizes = ctx.sizes()
    whole = torch.randn(ROWS, CLASSES, dtype=torch.float64)
    target = torch.full((ROWS,), -100)
    local = whole[:, ctx.my_classes(sizes)].clone().requires_grad_()
    value = ldist.cross_entropy(local, target, reduction=reduction, class_sizes=sizes)
    expected = F.cross_entropy(whole, target, reduction=reduction)
    close(value, expected, torch.float64, f"all rows ignored, {reduction}")
    value.sum().backward() if reduction != "mean" else value.backward()
    assert torch.equal(local.grad, torch.zeros_like(local)), f"all ignored, {reduction}: nonzero gradient"


def check_no_target_in_slice(ctx: Context, info: LossInfo):
    """Every target in the first process's classes: the others hold none."""
    sizes = ctx.sizes()
    check_loss(ctx, info, torch.float64, "mean", 11, sizes=sizes,
               target_override=lambda target: torch.where(target >= 0, target % sizes[0], target))


def check_minus_inf_slice(ctx: Context):
    """A row whose logits are -inf on one process's whole slice (a masked range) but not elsewhere."""
    sizes = ctx.sizes()
    torch.manual_seed(5)
    whole = torch.randn(ROWS, CLASSES, dtype=torch.float64)
    whole[0, :sizes[0]] = float("-inf")
    target = torch.randint(sizes[0], CLASSES, (ROWS,))
    local = whole[:, ctx.my_classes(sizes)].clone().requires_grad_()
    value = ldist.cross_entropy(local, target, class_sizes=sizes)
    value.backward()
    whole_leaf = whole.clone().requires_grad_()
    expected = F.cross_entropy(whole_leaf, target)
    expected.backward()
    close(value, expected, torch.float64, "a -inf slice")
    close(local.grad, whole_leaf.grad[:, ctx.my_classes(sizes)], torch.float64, "a -inf slice's gradient")


def check_gathered_reference(ctx: Context):
    """Where no kernel runs, the reference of the gathered rows: the reference backend (every loss's path
    without the extension), and a class weight that requires grad (which the kernels do not differentiate)."""
    sizes = ctx.sizes()
    torch.manual_seed(9)
    whole = torch.randn(ROWS, CLASSES, dtype=torch.float64)
    target = torch.randint(0, CLASSES, (ROWS,))
    target[2] = -100
    weight = torch.rand(CLASSES, dtype=torch.float64) + 0.5
    mine = ctx.my_classes(sizes)
    for backend, loss, requires_grad in (("reference", "cross_entropy", False), (None, "hinge", True)):
        lossext.set_backend(backend)
        try:
            local = whole[:, mine].clone().requires_grad_()
            local_weight = weight[mine].clone().requires_grad_(requires_grad)
            counter = CollectiveCounter()
            with counter.active():
                getattr(ldist, loss)(local, target, weight=local_weight, class_sizes=sizes).backward()
        finally:
            lossext.set_backend(None)
        whole_leaf, weight_leaf = whole.clone().requires_grad_(), weight.clone().requires_grad_(requires_grad)
        getattr(lossext.reference, loss)(whole_leaf, target, weight=weight_leaf).backward()
        close(local.grad, whole_leaf.grad[:, mine], torch.float64, f"gathered {loss}: input gradient")
        if requires_grad:
            close(local_weight.grad, weight_leaf.grad[mine], torch.float64, f"gathered {loss}: weight gradient")
        assert "all_reduce" not in counter.calls, f"gathered {loss}: {counter.calls}"


def check_linear_head(ctx: Context, info: LossInfo, dtype: torch.dtype, reduction: str):
    """The sharded fused head against lossext.linear_loss on the whole weight."""
    sizes = ctx.sizes()
    hidden = 24
    torch.manual_seed(13)
    input = (torch.randn(ROWS, hidden, dtype=torch.float64) / 2).to(dtype)
    linear_weight = (torch.randn(CLASSES, hidden, dtype=torch.float64) / 2).to(dtype)
    bias = (torch.randn(CLASSES, dtype=torch.float64) / 4).to(dtype)
    target = torch.randint(0, CLASSES, (ROWS,))
    target[::4] = -100
    mine = ctx.my_classes(sizes)
    x, w, b = input.clone().requires_grad_(), linear_weight[mine].clone().requires_grad_(), \
        bias[mine].clone().requires_grad_()
    upstream = torch.rand(ROWS if reduction == "none" else (), dtype=torch.float64).to(dtype) + 0.5
    params = loss_arguments(info, dtype, ctx.device, True)
    counter = CollectiveCounter()
    with counter.active():
        value = ldist.vocab_parallel_linear_loss(info.name, x, w, target, linear_bias=b, class_sizes=sizes,
                                                 chunk_size=5, reduction=reduction, **params)
        forward_calls = list(counter.calls)
        (value * upstream).sum().backward()
    backward_calls = counter.calls[len(forward_calls):]
    xs, ws, bs = input.clone().requires_grad_(), linear_weight.clone().requires_grad_(), \
        bias.clone().requires_grad_()
    single_params = loss_arguments(info, dtype, ctx.device, True)
    expected = lossext.linear_loss(info.name, xs, ws, target, linear_bias=bs, reduction=reduction, **single_params)
    (expected * upstream).sum().backward()
    name = f"sharded head {info.name} {dtype} {reduction}"
    close(value, expected, dtype, f"{name}: value against the unsharded head")
    # The truth of the gradients: float64 from the logits the products write (rounded to the dtype).
    logits = F.linear(input, linear_weight, bias).double().requires_grad_()
    truth_params = {key: (value.detach().double() if isinstance(value, torch.Tensor) else value)
                    for key, value in loss_arguments(info, torch.float64, ctx.device, False).items()}
    truth = getattr(lossext.reference, info.name)(logits, target, reduction=reduction, **truth_params)
    (truth * upstream.double()).sum().backward()
    g = logits.grad
    within_dot_product_bound(x.grad, g @ linear_weight.double(), g.abs() @ linear_weight.double().abs(), CLASSES,
                             dtype, f"{name}: input gradient")
    within_dot_product_bound(w.grad, (g.t() @ input.double())[mine], (g.abs().t() @ input.double().abs())[mine],
                             ROWS, dtype, f"{name}: weight gradient")
    within_dot_product_bound(b.grad, g.sum(0)[mine], g.abs().sum(0)[mine], ROWS, dtype, f"{name}: bias gradient")
    for key in info.tensor_params:
        close(params[key].grad, single_params[key].grad, dtype, f"{name}: d loss / d {key}")
    statistics_reduces = 1 if lossext.losses.row_statistics.statistics_layout(info.name)[0] == 0 else 2
    if reduction == "none":
        expected_forward, expected_backward = ["all_reduce"] * statistics_reduces, ["all_reduce"]
    else:
        expected_forward, expected_backward = ["all_reduce"] * (statistics_reduces + 1), []
    assert forward_calls == expected_forward, f"{name}: forward collectives {forward_calls}"
    assert backward_calls == expected_backward, f"{name}: backward collectives {backward_calls}"


def check_dtensor(ctx: Context, reduction: str, weighted: bool):
    """lossext.cross_entropy of a class-sharded DTensor against F.cross_entropy under loss_parallel."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    from torch.distributed.tensor.parallel import loss_parallel

    mesh = init_device_mesh(ctx.device.type, (ctx.world,))
    torch.manual_seed(17)
    whole = torch.randn(ROWS, CLASSES, dtype=torch.float32) * 3
    target = torch.randint(0, CLASSES, (ROWS,))
    # loss_parallel indexes the class weight at ignored rows' targets (IndexError at -100): only the
    # unweighted cases have an ignored row.
    if not weighted:
        target[1] = -100
    weight = torch.rand(CLASSES) + 0.5 if weighted else None
    ours = distribute_tensor(whole.clone(), mesh, [Shard(1)]).requires_grad_()
    theirs = distribute_tensor(whole.clone(), mesh, [Shard(1)]).requires_grad_()
    value = lossext.cross_entropy(ours, target, weight=weight, reduction=reduction)
    value.sum().backward() if reduction == "none" else value.backward()
    with loss_parallel():
        expected = F.cross_entropy(theirs, target, weight=weight, reduction=reduction)
        expected.sum().backward() if reduction == "none" else expected.backward()
    name = f"DTensor cross_entropy {reduction} weighted={weighted}"
    assert type(value).__name__ == "DTensor" and value.placements == expected.placements, \
        f"{name}: placements {getattr(value, 'placements', None)}, loss_parallel's {expected.placements}"
    close(value.to_local(), expected.to_local(), torch.float32, f"{name}: value")
    assert ours.grad.placements == theirs.grad.placements, f"{name}: gradient placements differ"
    close(ours.grad.to_local(), theirs.grad.to_local(), torch.float32, f"{name}: gradient",
          1.0 / ROWS if reduction == "mean" else 1.0)


def check_module_exchanges_sizes_once(ctx: Context):
    """VocabParallelLoss: one all_gather on the first call, then only the loss's all-reduces."""
    sizes = ctx.sizes()
    torch.manual_seed(23)
    whole = torch.randn(ROWS, CLASSES, dtype=torch.float64)
    target = torch.randint(0, CLASSES, (ROWS,))
    module = ldist.VocabParallelLoss("hinge", p=2.0, margin=0.5)
    local = whole[:, ctx.my_classes(sizes)]
    calls = []
    for _ in range(2):
        counter = CollectiveCounter()
        with counter.active():
            value = module(local, target)
        calls.append(counter.calls)
        close(value, lossext.hinge(whole, target, p=2.0, margin=0.5), torch.float64, "VocabParallelLoss")
    assert calls == [["all_gather", "all_reduce"], ["all_reduce"]], f"VocabParallelLoss collectives {calls}"
    assert module.class_sizes == sizes, module.class_sizes


def check_ddp_step(ctx: Context):
    """A DDP step of a model with a lossext loss equals the single-process step on the whole batch."""
    torch.manual_seed(21)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)).double()
    single = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)).double()
    single.load_state_dict(model.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    batch = torch.randn(4 * ctx.world, 8, dtype=torch.float64)
    target = torch.randint(0, 10, (4 * ctx.world,))
    mine = slice(4 * ctx.rank, 4 * ctx.rank + 4)
    for loss in (lambda o, t: lossext.cross_entropy(o, t, label_smoothing=0.1),
                 lambda o, t: lossext.hinge(o, t, p=2.0, margin=0.5)):
        ddp.zero_grad(), single.zero_grad()
        loss(ddp(batch[mine]), target[mine]).backward()
        loss(single(batch), target).backward()
        for (name, ours), theirs in zip(model.named_parameters(), single.parameters()):
            close(ours.grad, theirs.grad, torch.float64, f"DDP step: {name}")


def cases(ctx: Context) -> Dict[str, Callable[[], None]]:
    table: Dict[str, Callable[[], None]] = {}
    for number, info in enumerate(LOSSES):
        for dtype in DTYPES:
            for reduction in REDUCTIONS:
                seed = 1000 * number + 10 * DTYPES.index(dtype) + REDUCTIONS.index(reduction)
                table[f"{info.name}-{dtype}-{reduction}"] = (
                    lambda info=info, dtype=dtype, reduction=reduction, seed=seed:
                    check_loss(ctx, info, dtype, reduction, seed))
                table[f"{info.name}-{dtype}-{reduction}-weighted"] = (
                    lambda info=info, dtype=dtype, reduction=reduction, seed=seed:
                    check_loss(ctx, info, dtype, reduction, seed + 5, weighted=True))
        table[f"{info.name}-k-dimensional"] = (
            lambda info=info: check_loss(ctx, info, torch.float64, "none", 77, shape=(3, CLASSES, 2, 2)))
        table[f"{info.name}-sizes-exchanged"] = (
            lambda info=info: check_loss(ctx, info, torch.float32, "mean", 78, pass_sizes=False))
        table[f"{info.name}-recompute"] = lambda info=info: with_gradient_mode(
            "recompute", lambda: check_loss(ctx, info, torch.float32, "none", 79, weighted=True))
        for param_set in range(1, len(info.param_sets)):
            table[f"{info.name}-params{param_set}"] = lambda info=info, param_set=param_set: check_loss(
                ctx, info, torch.float32, "mean", 80 + param_set, weighted=True, param_set=param_set)
        table[f"{info.name}-no-target-in-slice"] = lambda info=info: check_no_target_in_slice(ctx, info)
        table[f"{info.name}-bytes"] = lambda info=info: check_bytes_independent_of_classes(ctx, info)
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            for reduction in REDUCTIONS:
                table[f"head-{info.name}-{dtype}-{reduction}"] = (
                    lambda info=info, dtype=dtype, reduction=reduction: check_linear_head(ctx, info, dtype, reduction))
    cross_entropy = LOSSES[0]
    for dtype in DTYPES:
        table[f"cross_entropy-probabilities-{dtype}"] = (
            lambda dtype=dtype: check_loss(ctx, cross_entropy, dtype, "mean", 91, probabilities=True))
        table[f"label-smoothing-{dtype}"] = lambda dtype=dtype: check_label_smoothing(ctx, dtype)
    for reduction in REDUCTIONS:
        table[f"all-ignored-{reduction}"] = lambda reduction=reduction: check_all_ignored(ctx, reduction)
        for weighted in (False, True):
            table[f"dtensor-{reduction}-weighted={weighted}"] = (
                lambda reduction=reduction, weighted=weighted: check_dtensor(ctx, reduction, weighted))
    table["minus-inf-slice"] = lambda: check_minus_inf_slice(ctx)
    table["gathered-reference"] = lambda: check_gathered_reference(ctx)
    table["ddp-step"] = lambda: check_ddp_step(ctx)
    table["module-exchanges-sizes-once"] = lambda: check_module_exchanges_sizes_once(ctx)
    return table


def with_gradient_mode(mode: str, check: Callable[[], None]) -> None:
    lossext.set_gradient_mode(mode)
    try:
        check()
    finally:
        lossext.set_gradient_mode(None)


def main(rank: int, world: int, init_file: str, out_dir: str, backend: str) -> None:
    torch.set_num_threads(1)
    device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    ctx = Context(rank, world, device)
    results: Dict[str, Optional[str]] = {}
    selected = os.environ.get("LOSSEXT_DISTRIBUTED_CASES")
    for name, case in cases(ctx).items():
        if selected and selected not in name:
            continue
        try:
            with torch.device(device) if backend == "nccl" else contextlib.nullcontext():
                case()
            results[name] = None
        except Exception:
            results[name] = traceback.format_exc(limit=4)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as out:
        json.dump(results, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
