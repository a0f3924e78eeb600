"""The row losses as the tests and the benchmark see them: one LossInfo per loss, in LOSSES.

An entry names the loss (`lossext.<name>`, `lossext.reference.<name>`, the ops
`torch.ops.lossext.<name>_forward`, `_backward`, `_forward_out`), its parameter sets, the
PyTorch op it must match where there is one, how to draw inputs that keep away from its
discontinuities, and the flags that select the generic checks (tests/test_losses.py,
tests/test_ops.py). bench/cases.py times every entry with its `bench_params`.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import lossext


@dataclass(frozen=True)
class LossSample:
    """One input configuration of the value-and-gradient checks."""

    shape: Tuple[int, ...]  # the logits: class dim 1, or 0 for a 1-D input
    weighted: bool = False  # with a random positive (C,) class weight
    ignore_index: int = -100  # a quarter of the rows' targets set to it

    @property
    def num_classes(self) -> int:
        return self.shape[0] if len(self.shape) == 1 else self.shape[1]

    def __str__(self) -> str:
        options = (["weight"] if self.weighted else []) + ([f"ignore_index={self.ignore_index}"]
                                                           if self.ignore_index != -100 else [])
        return f"{self.shape}-{'-'.join(options) or 'plain'}"


# The options every loss is checked with: none, a class weight, an ignore_index that is a class.
OPTIONS = (dict(), dict(weighted=True), dict(ignore_index=2))
SampleGrid = Callable[[torch.dtype, str], Sequence[LossSample]]


def each_shape_with_each_option(shapes: Sequence[Tuple[int, ...]], options: Sequence[dict] = OPTIONS) -> SampleGrid:
    """Every shape with every option, whatever the dtype and reduction."""
    samples = tuple(LossSample(shape, **option) for shape in shapes for option in options)
    return lambda dtype, reduction: samples


def weighted_rows_then_float32_shapes(dtype: torch.dtype, reduction: str) -> List[LossSample]:
    """(16, 37) weighted rows in every dtype and reduction; a single row and a (4, 37, 3, 5) K-dimensional
    input with every option in float32 for mean and none, where shape and options are independent of the
    dtype's rounding."""
    samples = [LossSample((16, 37), weighted=True)]
    if dtype == torch.float32 and reduction != "sum":
        samples += [LossSample(shape, **option) for shape in ((37,), (4, 37, 3, 5)) for option in OPTIONS]
    return samples


def make_case(shape, num_classes, device, dtype, ignore_fraction=0.25, target_dtype=torch.int64,
              ignore_index=-100, scale=3.0):
    """Logits of `shape` (class dim 1, or 0 for 1-D), normal times `scale`, and class-index targets
    with about `ignore_fraction` of the rows set to ignore_index."""
    input = (torch.randn(shape, dtype=torch.float64) * scale).to(dtype).to(device)
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = torch.randint(0, num_classes, target_shape)
    if ignore_fraction and target.dim() > 0:
        target[torch.rand(target_shape) < ignore_fraction] = ignore_index
    if target_dtype == torch.uint8:
        target = target.clamp(min=0)
    return input, target.to(target_dtype).to(device)


def margins(rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """o_t - max_{j != t} o_j of each (C,) row (+inf with one class)."""
    others = rows.scatter(1, target[:, None], float("-inf"))
    return rows.gather(1, target[:, None])[:, 0] - others.amax(dim=1)


@dataclass(frozen=True)
class LossInfo:
    name: str  # lossext.<name>, lossext.reference.<name> and the ops <name>_forward, ...
    # Every float parameter, in the order the op's params list takes them (the function takes them by name).
    param_sets: Tuple[Mapping[str, float], ...] = ({},)
    # Learnable scalars passed as tensors that take gradients, to the op as one 1-D tensor in this order,
    # with the values the tests use (two-scale's r1, r2 and R).
    tensor_params: Mapping[str, float] = field(default_factory=dict)
    # PyTorch's own op with the same arguments: the float64 truth of the tests and a peer in the bench.
    native: Optional[Callable[..., torch.Tensor]] = None
    supports_probabilities: bool = False  # also takes class-probability targets (op <name>_probabilities)
    module: Optional[str] = None  # lossext.nn class taking (**params, weight, ignore_index, reduction)
    # lossext.autograd class whose apply takes (input, target, *params, weight, ignore_index, reduction).
    autograd_function: Optional[str] = None
    # (o_j for j != t, o_t) where the derivative jumps; gradcheck's finite differences keep 0.1 away.
    kinks: Optional[Callable[[Mapping[str, float]], Tuple[float, float]]] = None
    # The parameter at which the value jumps as a row's margin o_t - max_{j != t} o_j crosses it
    # (two-scale's eta): every sample keeps its margins 0.05 away, so that a rounding of the margin
    # cannot switch a row's branch between the kernel and the float64 truth.
    margin_threshold: Optional[str] = None
    sums_class_terms: bool = False  # a sum of per-class terms (hinge, L1, L2): a small sum must survive o_t's term
    # Whether one-class rows match the truth to the usual tolerance, which is none where the truth's
    # gradient is 0; and whether the loss and every gradient are then exactly 0.
    one_class_matches: Callable[[Mapping[str, float]], bool] = lambda params: True
    zero_with_one_class: bool = False
    # The reference keeps -inf logits out of the row (for the limit p_j o_j -> 0), so their gradient is 0
    # even where the row's loss is NaN, where the kernels' is NaN.
    masks_minus_inf_logits: bool = False
    very_many_classes: int = 20_003  # classes of the long-row check (vector loops, a scalar tail of 3)
    samples: SampleGrid = weighted_rows_then_float32_shapes  # of the value-and-gradient check
    bench_params: Mapping[str, float] = field(default_factory=dict)  # every parameter, tensor ones included
    tolerance: str = "loss"  # its row in the tolerance table (tests/conftest.py)

    @property
    def function(self) -> Callable[..., torch.Tensor]:
        return getattr(lossext, self.name)

    @property
    def reference(self) -> Callable[..., torch.Tensor]:
        return getattr(lossext.reference, self.name)

    @property
    def ground_truth(self) -> Callable[..., torch.Tensor]:
        """PyTorch's op where there is one (it checks the reference too), else the reference."""
        return self.native or self.reference

    @property
    def param_names(self) -> Tuple[str, ...]:
        return tuple(self.param_sets[0])

    @property
    def op_names(self) -> Tuple[str, ...]:
        return (self.name,) + ((f"{self.name}_probabilities",) if self.supports_probabilities else ())

    def op_params(self, params: Mapping[str, float]) -> List[float]:
        """The op's params list from a mapping holding (at least) every float parameter; an option that is off
        (None: cross-entropy's logit_softcap) is the op's 0."""
        return [0.0 if params[name] is None else float(params[name]) for name in self.param_names]

    def op_tensor_params(self, params: Mapping[str, torch.Tensor]) -> Optional[torch.Tensor]:
        """The op's tensor_params (one 1-D tensor, gradients flowing back) from a mapping holding them, or None."""
        if not self.tensor_params:
            return None
        return torch.stack([torch.as_tensor(params[name]).reshape(()) for name in self.tensor_params])

    def draw(self, shape, dtype, device, params: Mapping[str, float], **make_case_options):
        """make_case's logits and targets, the logits kept away from the loss's discontinuity."""
        num_classes = shape[0] if len(shape) == 1 else shape[1]
        input, target = make_case(shape, num_classes, device, dtype, **make_case_options)
        ignore_index = make_case_options.get("ignore_index", -100)
        return self.away_from_discontinuity(input, target, params, ignore_index), target

    def away_from_discontinuity(self, input: torch.Tensor, target: torch.Tensor, params: Mapping[str, float],
                                ignore_index: int = -100) -> torch.Tensor:
        """input with the margin of every row that is not ignored at least 0.05 from margin_threshold,
        in input's dtype (raising the target logit by 0.1 until rounding keeps it there)."""
        if self.margin_threshold is None:
            return input
        threshold = params[self.margin_threshold]
        class_dim = 0 if input.dim() == 1 else 1
        moved_shape = input.movedim(class_dim, -1).shape
        rows = input.double().movedim(class_dim, -1).reshape(-1, moved_shape[-1]).cpu().clone()
        flat_target = target.reshape(-1).long().cpu()
        kept = (flat_target != ignore_index) & (flat_target >= 0)
        rows_kept, target_kept = rows[kept], flat_target[kept]
        for _ in range(100):
            close = (margins(rows_kept, target_kept) - threshold).abs() < 0.05
            if not close.any():
                break
            rows_kept[close, target_kept[close]] += 0.1
            rows_kept = rows_kept.to(input.dtype).double()
        rows[kept] = rows_kept
        return rows.reshape(moved_shape).movedim(-1, class_dim).to(input.dtype).to(input.device)

    def smooth_logits(self, shape, target: torch.Tensor, params: Mapping[str, float]) -> torch.Tensor:
        """float64 (N, C) logits, normal times 2, at least 0.1 from the kinks and 0.05 from the
        discontinuity of the rows whose target is a class: finite differences see one smooth piece."""
        x = torch.randn(shape, dtype=torch.float64) * 2
        if self.kinks is not None:
            other_kink, target_kink = self.kinks(params)
            kink = torch.full(shape, other_kink, dtype=torch.float64)
            rows = torch.nonzero(target >= 0)[:, 0]
            kink[rows, target[rows]] = target_kink
            distance = x - kink
            x = kink + torch.where(distance >= 0, 1.0, -1.0) * (distance.abs() + 0.1)
        return self.away_from_discontinuity(x, target, params)


def cross_entropy_with_z_loss(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                              ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0,
                              z_loss: float = 0.0, logit_softcap: Optional[float] = None) -> torch.Tensor:
    """PyTorch's F.cross_entropy plus PaLM's z-loss z * lse^2 per row (times w_t for class indices, reduced as
    F.cross_entropy reduces its rows), from torch.logsumexp, of the logits capped to c tanh(o / c) with
    torch.tanh when logit_softcap = c (Gemma 2): the ground truth of lossext.cross_entropy."""
    if logit_softcap is not None:
        input = logit_softcap * torch.tanh(input / logit_softcap)
    loss = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)
    if z_loss == 0.0:
        return loss
    class_dim = 0 if input.dim() == 1 else 1
    # lse = m + log sum exp(o - m) with m constant to autograd: torch.logsumexp's backward takes
    # exp(o - lse), which is 1, not 1/2, at two tied logits of 1e30 (1e30 + log 2 rounds to 1e30).
    max_logit = input.amax(dim=class_dim, keepdim=True).detach()
    lse = (max_logit + torch.log(torch.exp(input - max_logit).sum(dim=class_dim, keepdim=True))).squeeze(class_dim)
    squared_lse = lse ** 2
    if target.is_floating_point():  # class probabilities: unweighted rows, the mean over rows
        row_weight = torch.ones_like(squared_lse)
        denominator = squared_lse.new_tensor(float(squared_lse.numel()))
    else:
        kept = target != ignore_index
        class_weight = input.new_ones(input.shape[class_dim]) if weight is None else weight
        row_weight = torch.where(kept, class_weight[torch.where(kept, target, 0).long()], 0.0)
        denominator = row_weight.sum()
    terms = z_loss * row_weight * squared_lse
    if reduction == "none":
        return loss + terms
    return loss + (terms.sum() if reduction == "sum" else terms.sum() / denominator)


LOSSES: Tuple[LossInfo, ...] = (
    # The cap 3 of the last set saturates tanh for the samples' larger logits (|o| up to ~8).
    LossInfo("cross_entropy", (dict(label_smoothing=0.1, z_loss=0.0, logit_softcap=None),
                               dict(label_smoothing=0.0, z_loss=0.0, logit_softcap=None),
                               dict(label_smoothing=0.1, z_loss=0.01, logit_softcap=None),
                               dict(label_smoothing=0.0, z_loss=0.0, logit_softcap=3.0)),
             native=cross_entropy_with_z_loss,
             supports_probabilities=True, module="CrossEntropyLoss", zero_with_one_class=True,
             # With label smoothing the one class's gradient p - (1 - eps) - eps/C rounds to ~1e-17 in the
             # kernels (PyTorch sums the smoothed target first, 1 - ((1 - eps) + eps) = 0): not exactly 0.
             one_class_matches=lambda params: params["label_smoothing"] == 0.0,
             # A language model's vocabulary: rows longer than any cache level.
             very_many_classes=200_003,
             # The drop-in for F.cross_entropy: every shape with every option in every dtype and reduction.
             samples=each_shape_with_each_option(((37,), (16, 37), (4, 37, 3, 5))),
             bench_params=dict(label_smoothing=0.0, z_loss=0.0, logit_softcap=None)),
    LossInfo("hinge", (dict(p=1.0, margin=0.5), dict(p=2.0, margin=0.5), dict(p=3.0, margin=1.0),
                       dict(p=1.5, margin=0.25)),
             module="HingeLoss", autograd_function="HingeFunction",
             kinks=lambda params: (-params["margin"], params["margin"]), sums_class_terms=True,
             bench_params=dict(p=2.0, margin=0.5)),
    LossInfo("l1", module="L1Loss", autograd_function="L1Function", kinks=lambda params: (0.0, 1.0),
             sums_class_terms=True),
    LossInfo("l2", module="L2Loss", autograd_function="L2Function", sums_class_terms=True),
    LossInfo("logistic", module="LogisticLoss", autograd_function="LogisticFunction", sums_class_terms=True),
    LossInfo("expectation", module="ExpectationLoss", autograd_function="ExpectationFunction"),
    LossInfo("regularized_expectation", module="RegularizedExpectationLoss",
             autograd_function="RegularizedExpectationFunction"),
    LossInfo("chebyshev", module="ChebyshevLoss", autograd_function="ChebyshevFunction"),
    LossInfo("squared_log", module="SquaredLogLoss", autograd_function="SquaredLogFunction"),
    LossInfo("tanimoto", module="TanimotoLoss", autograd_function="TanimotoFunction"),
    LossInfo("cauchy_schwarz", module="CauchySchwarzLoss", autograd_function="CauchySchwarzFunction"),
    LossInfo("alpha_loss", (dict(alpha=1.0), dict(alpha=2.0), dict(alpha=0.8), dict(alpha=math.inf)),
             module="AlphaLoss", autograd_function="AlphaLossFunction", bench_params=dict(alpha=2.0)),
    # Its module (modes, learnable scales, a norm argument) is tested in tests/test_two_scale.py.
    LossInfo("two_scale_cross_entropy", (dict(eta=0.5),), tensor_params=dict(r1=1.5, r2=6.0, norm=2.5),
             margin_threshold="eta", zero_with_one_class=True, masks_minus_inf_logits=True,
             samples=each_shape_with_each_option(((32, 7), (4, 7, 3, 2)), (dict(), dict(weighted=True))),
             # The paper's start (r2 = 10 r1), with a small margin threshold.
             bench_params=dict(eta=0.01, r1=1.0, r2=10.0, norm=1.0)),
)
LOSS_BY_NAME: Mapping[str, LossInfo] = {loss.name: loss for loss in LOSSES}
