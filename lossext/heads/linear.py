"""The fused classifier head: a linear layer and any lossext loss without the (N, V) logits.

    loss = lossext.linear_cross_entropy(hidden, head.weight, target)     # F.linear_cross_entropy's signature
    loss = lossext.linear_loss("hinge", hidden, head.weight, target, p=2.0)

The ops (`torch.ops.lossext.<loss>_linear_forward / _linear_backward`, schemas in
csrc/linear_loss_registration.cpp) run the rows in chunks: each chunk's logits go into one reused
buffer, the loss's fused kernel turns it into its gradient in place, and the chunk's input and
weight gradients are multiplied out before the next chunk (csrc/linear_loss_op.h). So the largest
temporary is one chunk of logits: `chunk_size` rows, or as many as `chunk_bytes` hold (default
128 MiB).

Gradients: for reduction "mean" and "sum" they are finished in the forward (the chunk's gradient
exists there anyway, so this costs no extra product), and backward only scales them by the upstream
gradient, skipping that on CPU when it is exactly 1. For reduction "none" the upstream gradient
differs per row and cannot be applied afterwards to a weight gradient already summed over rows, so
the forward computes the loss alone and backward recomputes the logits, one product more; so does
`recompute=True`, which keeps no gradient alive between forward and backward (the inputs only), and
so does float16, whose unscaled gradient would underflow before a loss scale reaches it.
"""

from typing import Callable, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from .. import _extension
from .._checks import reduction_code
from .._dtypes import accumulation_dtype as compute_dtype
from ..losses import reference
from ..losses.binding import bind_loss_arguments, op_arguments, resolve_loss
from ..losses import ops as _ops
from ..losses.ops import ROW_LOSS_NAMES

__all__ = ["LinearCrossEntropyLoss", "LinearEvaluation", "LinearLoss", "linear_cross_entropy", "linear_evaluate",
           "linear_loss"]

_INDEX_DTYPES = (torch.int64, torch.int32, torch.uint8)


def _is_probability_target(name: str, input: torch.Tensor, linear_weight: torch.Tensor,
                           target: torch.Tensor) -> bool:
    return (name == "cross_entropy" and target.is_floating_point() and linear_weight.dim() == 2
            and tuple(target.shape) == tuple(input.shape[:-1]) + (linear_weight.shape[0],))


def _check_head(name: str, input: torch.Tensor, linear_weight: torch.Tensor, linear_bias: Optional[torch.Tensor],
                target: torch.Tensor, probabilities: bool) -> None:
    """The checks of csrc/linear_loss_op.h, raised before anything runs (also for the reference)."""
    op = f"linear_loss({name})"
    for argument, value in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{op}: {argument} must be a tensor, got {type(value).__name__}")
    if input.dim() == 0:
        raise ValueError(f"{op}: input must be (H,), (N, H) or (B, T, H), got a 0-dim tensor")
    if not input.is_floating_point():
        raise NotImplementedError(f"{op}: input must be a floating-point tensor, got {input.dtype}")
    if linear_weight.dim() != 2:
        raise RuntimeError(f"{op}: linear_weight must be 2-D (V, H), got shape {tuple(linear_weight.shape)}")
    if linear_weight.shape[1] != input.shape[-1]:
        raise RuntimeError(f"{op}: linear_weight must have shape (V, H) with H = {input.shape[-1]} (the input's "
                           f"last dimension), got {tuple(linear_weight.shape)}")
    if linear_weight.shape[0] < 1:
        raise RuntimeError(f"{op}: linear_weight must have at least one class (row), got shape "
                           f"{tuple(linear_weight.shape)}")
    tensors = [("linear_weight", linear_weight), ("target", target)]
    if linear_bias is not None:
        if linear_bias.dim() != 1 or linear_bias.shape[0] != linear_weight.shape[0]:
            raise RuntimeError(f"{op}: linear_bias must have shape (V,) = ({linear_weight.shape[0]},), got "
                               f"{tuple(linear_bias.shape)}")
        tensors.append(("linear_bias", linear_bias))
    for argument, value in tensors:
        if value.device != input.device:
            raise RuntimeError(f"{op}: {argument} must be on the input's device ({input.device}), got {value.device}")
        if argument != "target" and value.dtype != input.dtype:
            raise RuntimeError(f"{op}: {argument} must have the input's dtype ({input.dtype}), got {value.dtype}")
    if probabilities:
        return
    if target.dtype not in _INDEX_DTYPES:
        raise RuntimeError(f"{op}: target must hold class indices as int64, int32 or uint8"
                           f"{' (or class probabilities of shape (..., V))' if name == 'cross_entropy' else ''}, "
                           f"got {target.dtype}")
    if tuple(target.shape) != tuple(input.shape[:-1]):
        raise ValueError(f"{op}: Expected target of shape {list(input.shape[:-1])} (the input's without H), "
                         f"got {list(target.shape)}")


def linear_loss(
    loss: Union[str, Callable],
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    linear_bias: Optional[torch.Tensor] = None,
    chunk_size: Optional[int] = None,
    chunk_bytes: Optional[int] = None,
    recompute: bool = False,
    **loss_kwargs,
) -> torch.Tensor:
    """`loss` (a lossext loss's name or function) of the logits input @ linear_weight.T + linear_bias,
    without materialising them.

    input (H,), (N, H) or (B, T, H); linear_weight (V, H); linear_bias (V,) or None; target class
    indices of the input's shape without H (or, for cross_entropy, class probabilities (..., V)).
    loss_kwargs are the loss's own arguments (weight, ignore_index, reduction, hinge's p and margin,
    alpha_loss's alpha, the two-scale loss's r1, r2, eta, norm, ...). Gradients flow to input,
    linear_weight, linear_bias and the two-scale loss's tensor scales. chunk_size: rows per chunk;
    chunk_bytes: else the size of the logits buffer (default 128 MiB); recompute: see the module doc.
    """
    name, function = resolve_loss(loss, "linear_loss")
    args = bind_loss_arguments(name, function, loss_kwargs, "linear_loss")
    probabilities = _is_probability_target(name, input, linear_weight, target)
    _check_head(name, input, linear_weight, linear_bias, target, probabilities)
    weight = args.get("weight")
    if probabilities and args["ignore_index"] >= 0:
        raise RuntimeError(f"linear_loss({name}): ignore_index is not supported for floating point target")
    if not _extension.use_extension(input.device) or any(
            t is not None and t.requires_grad for t in (weight, target if probabilities else None)):
        return reference_linear_loss(name, input, linear_weight, target, linear_bias=linear_bias, **args)
    op_name, params, tensor_params = op_arguments(name, function, args, input, probabilities)
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != linear_weight.shape[0]):
        raise RuntimeError(f"linear_loss({name}): weight tensor should be defined either for all "
                           f"{linear_weight.shape[0]} classes or no classes but got weight tensor of shape: "
                           f"{list(weight.shape)}")
    reduction = reduction_code(args["reduction"])
    batch_shape = tuple(input.shape[:-1])
    rows = input.reshape(-1, input.shape[-1])
    flat_target = target.reshape(-1, linear_weight.shape[0]) if probabilities else target.reshape(-1)
    # float16 recomputes, as the row-loss ops do (lossext.losses.ops.fuses_gradient): a gradient finished in
    # forward is rounded to float16 before the upstream gradient scales it, and AMP's loss scale cannot
    # bring back the (p - y) / N that float16 flushed (4.9e-3 relative error at (2048, 16, 4000) under a scale
    # of 8192, against 5.8e-4 unfused).
    fused = reduction != 0 and not recompute and torch.is_grad_enabled() and input.dtype != torch.float16
    grad_mask = [fused and t is not None and t.requires_grad
                 for t in (rows, linear_weight, linear_bias, tensor_params)]
    outputs = getattr(torch.ops.lossext, f"{op_name}_linear_forward").default(
        rows, linear_weight, linear_bias, flat_target, weight, params, tensor_params, args["ignore_index"],
        reduction, chunk_size, chunk_bytes, grad_mask)
    return outputs[0].reshape(batch_shape) if reduction == 0 else outputs[0]


def linear_cross_entropy(
    input: torch.Tensor,
    linear_weight: torch.Tensor,
    target: torch.Tensor,
    *,
    linear_bias: Optional[torch.Tensor] = None,
    weight: Optional[torch.Tensor] = None,
    reduction: str = "mean",
    ignore_index: Optional[int] = -100,
    label_smoothing: float = 0.0,
    options=None,
    chunk_size: Optional[int] = None,
    chunk_bytes: Optional[int] = None,
    recompute: bool = False,
    z_loss: float = 0.0,
    logit_softcap: Optional[float] = None,
) -> torch.Tensor:
    """Drop-in for torch.nn.functional.linear_cross_entropy: cross_entropy(linear(input, linear_weight,
    linear_bias), target, ...) through the fused head (see linear_loss). ignore_index=None means -100, as
    there; `options` (torch's LinearCrossEntropyOptions) is accepted and ignored: chunking is
    chunk_size / chunk_bytes here. 2-D linear_weight only (torch's K-dimensional weights are not supported).
    z_loss: PaLM's z * lse^2 per row, logit_softcap: Gemma 2's c tanh(o / c) before the softmax (both
    lossext.cross_entropy's), in the same kernel.
    """
    return linear_loss("cross_entropy", input, linear_weight, target, linear_bias=linear_bias,
                       chunk_size=chunk_size, chunk_bytes=chunk_bytes, recompute=recompute, weight=weight,
                       reduction=reduction, ignore_index=-100 if ignore_index is None else ignore_index,
                       label_smoothing=label_smoothing, z_loss=z_loss, logit_softcap=logit_softcap)


def reference_linear_loss(loss: Union[str, Callable], input: torch.Tensor, linear_weight: torch.Tensor,
                          target: torch.Tensor, *, linear_bias: Optional[torch.Tensor] = None,
                          chunk_size: Optional[int] = None, chunk_bytes: Optional[int] = None,
                          recompute: bool = False, **loss_kwargs) -> torch.Tensor:
    """The reference of linear_loss: lossext.reference.<loss> of input @ linear_weight.T + linear_bias,
    all computed in float32 (float64 for float64 inputs), the result in the input's dtype. It takes
    linear_loss's arguments; chunk_size, chunk_bytes and recompute change nothing here."""
    name, function = resolve_loss(loss, "linear_loss")
    args = bind_loss_arguments(name, function, loss_kwargs, "linear_loss")
    probabilities = _is_probability_target(name, input, linear_weight, target)
    _check_head(name, input, linear_weight, linear_bias, target, probabilities)
    dtype = compute_dtype(input.dtype)
    logits = input.reshape(-1, input.shape[-1]).to(dtype) @ linear_weight.to(dtype).t()
    if linear_bias is not None:
        logits = logits + linear_bias.to(dtype)
    if args.get("weight") is not None:
        args["weight"] = args["weight"].to(dtype)
    flat_target = target.reshape(-1, linear_weight.shape[0]).to(dtype) if probabilities else target.reshape(-1)
    out = getattr(reference, name)(logits, flat_target, **args)
    return (out.reshape(input.shape[:-1]) if args["reduction"] == "none" else out).to(input.dtype)


def reference_linear_cross_entropy(input: torch.Tensor, linear_weight: torch.Tensor, target: torch.Tensor, *,
                                   linear_bias: Optional[torch.Tensor] = None,
                                   weight: Optional[torch.Tensor] = None, reduction: str = "mean",
                                   ignore_index: Optional[int] = -100, label_smoothing: float = 0.0,
                                   options=None, chunk_size: Optional[int] = None,
                                   chunk_bytes: Optional[int] = None, recompute: bool = False,
                                   z_loss: float = 0.0, logit_softcap: Optional[float] = None) -> torch.Tensor:
    """The reference of linear_cross_entropy (lossext.reference.cross_entropy of the fp32 logits), with
    its arguments; options, chunk_size, chunk_bytes and recompute change nothing here."""
    return reference_linear_loss("cross_entropy", input, linear_weight, target, linear_bias=linear_bias,
                                 weight=weight, reduction=reduction,
                                 ignore_index=-100 if ignore_index is None else ignore_index,
                                 label_smoothing=label_smoothing, z_loss=z_loss, logit_softcap=logit_softcap)


class LinearEvaluation(NamedTuple):
    """Per-row results of linear_evaluate, each of the input's shape without H."""

    loss: torch.Tensor  # cross-entropy lse - o_t (unweighted, unsmoothed; 0 for ignored rows), fp32 (fp64)
    log_sum_exp: torch.Tensor  # log sum_j exp(o_j), fp32 (fp64)
    predicted: torch.Tensor  # int64, the first class with the largest logit
    target_rank: torch.Tensor  # int64, classes scoring strictly above the target; -1 for ignored rows

    def top_k_accuracy(self, k: int = 1) -> torch.Tensor:
        """Fraction of the rows not ignored whose target is among the k largest logits (ties count as
        correct, as lossext.metrics.top_k_accuracy); NaN when every row is ignored."""
        if k < 1:
            raise ValueError(f"top_k_accuracy: k must be at least 1, got {k}")
        counted = self.target_rank >= 0
        return ((self.target_rank < k) & counted).sum().double() / counted.sum().double()


def _check_evaluation(input, linear_weight, linear_bias, target):
    _check_head("cross_entropy", input, linear_weight, linear_bias, target, probabilities=False)


def linear_evaluate(input: torch.Tensor, linear_weight: torch.Tensor, target: torch.Tensor, *,
                    linear_bias: Optional[torch.Tensor] = None, ignore_index: int = -100,
                    chunk_size: Optional[int] = None, chunk_bytes: Optional[int] = None) -> LinearEvaluation:
    """Validation of a classifier head without its logits: per row the cross-entropy, log-sum-exp,
    predicted class and the target's rank (LinearEvaluation, whose top_k_accuracy(k) is any top-k
    accuracy), from the same chunk loop as the fused training head, so no (N, V) tensor exists.
    No gradient. For another loss's (or a weighted, smoothed) per-row value use
    linear_loss(..., reduction="none") under torch.no_grad()."""
    _check_evaluation(input, linear_weight, linear_bias, target)
    batch_shape = tuple(input.shape[:-1])
    rows = input.detach().reshape(-1, input.shape[-1])
    bias = None if linear_bias is None else linear_bias.detach()
    if not _extension.use_extension(input.device):
        return reference_linear_evaluate(input, linear_weight, target, linear_bias=linear_bias,
                                         ignore_index=ignore_index)
    outputs = torch.ops.lossext.linear_cross_entropy_evaluate.default(
        rows, linear_weight.detach(), bias, target.reshape(-1), ignore_index, chunk_size, chunk_bytes)
    return LinearEvaluation(*(output.reshape(batch_shape) for output in outputs))


@torch.no_grad()
def reference_linear_evaluate(input: torch.Tensor, linear_weight: torch.Tensor, target: torch.Tensor, *,
                              linear_bias: Optional[torch.Tensor] = None, ignore_index: int = -100,
                              chunk_size: Optional[int] = None,
                              chunk_bytes: Optional[int] = None) -> LinearEvaluation:
    """The reference of linear_evaluate, from the materialised logits in fp32 (fp64 for fp64 inputs);
    chunk_size and chunk_bytes change nothing here."""
    _check_evaluation(input, linear_weight, linear_bias, target)
    dtype = compute_dtype(input.dtype)
    # The logits are rounded to the input's dtype first, as the fused path's products write them.
    logits = F.linear(input.reshape(-1, input.shape[-1]), linear_weight, linear_bias).to(dtype)
    flat_target = target.reshape(-1).long()
    ignored = flat_target == ignore_index
    if bool(((flat_target < 0) | (flat_target >= logits.shape[1]))[~ignored].any()):
        raise IndexError("linear_evaluate: a target is out of bounds")
    safe_target = torch.where(ignored, 0, flat_target)
    log_sum_exp = torch.logsumexp(logits, dim=1)
    target_logit = logits.gather(1, safe_target[:, None])[:, 0]
    loss = torch.where(ignored, 0.0, log_sum_exp - target_logit)
    rank = torch.where(ignored, -1, (logits > target_logit[:, None]).sum(dim=1))
    batch_shape = tuple(input.shape[:-1])
    return LinearEvaluation(loss.reshape(batch_shape), log_sum_exp.reshape(batch_shape),
                            logits.argmax(dim=1).reshape(batch_shape), rank.reshape(batch_shape))


class LinearLoss(torch.nn.Module):
    """A linear layer (`self.linear`, as torch.nn.Linear(in_features, num_classes, bias)) followed by
    the lossext loss `loss`, fused: forward(input, target) = linear_loss(loss, input, self.linear.weight,
    target, linear_bias=self.linear.bias, **loss_kwargs).

    loss_kwargs are stored as attributes (nn.Parameters among them, such as learnable two-scale r1 and
    r2, are registered and trained; tensors become buffers), so they can be changed between steps.
    """

    def __init__(self, in_features: int, num_classes: int, loss: Union[str, Callable], bias: bool = False, *,
                 device=None, dtype=None, chunk_size: Optional[int] = None, chunk_bytes: Optional[int] = None,
                 recompute: bool = False, **loss_kwargs) -> None:
        super().__init__()
        self.loss_name, function = resolve_loss(loss, "linear_loss")
        self.loss_argument_names = tuple(bind_loss_arguments(self.loss_name, function, loss_kwargs, "LinearLoss"))
        self.linear = torch.nn.Linear(in_features, num_classes, bias=bias, device=device, dtype=dtype)
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.recompute = recompute
        for key, value in bind_loss_arguments(self.loss_name, function, loss_kwargs, "LinearLoss").items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
                self.register_buffer(key, value)
            else:
                setattr(self, key, value)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        kwargs = {key: getattr(self, key) for key in self.loss_argument_names}
        return linear_loss(self.loss_name, input, self.linear.weight, target, linear_bias=self.linear.bias,
                           chunk_size=self.chunk_size, chunk_bytes=self.chunk_bytes, recompute=self.recompute,
                           **kwargs)

    def extra_repr(self) -> str:
        kwargs = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.loss_argument_names
                           if not isinstance(getattr(self, key), torch.Tensor))
        return f"loss={self.loss_name!r}, {kwargs}"


class LinearCrossEntropyLoss(torch.nn.Module):
    """Mirrors torch.nn.LinearCrossEntropyLoss (same constructor, `self.linear`, the `weight` buffer),
    running linear_cross_entropy. out_features (K-dimensional heads) must be (); `options` is ignored."""

    def __init__(self, in_features: int, num_classes: int, *, out_features: Tuple[int, ...] = (),
                 bias: bool = False, device=None, dtype=None, reduction: str = "mean",
                 weight: Optional[torch.Tensor] = None, ignore_index: Optional[int] = None,
                 label_smoothing: float = 0.0, options=None, chunk_size: Optional[int] = None,
                 chunk_bytes: Optional[int] = None, recompute: bool = False) -> None:
        super().__init__()
        if tuple(out_features) != ():
            raise NotImplementedError("LinearCrossEntropyLoss: out_features (a K-dimensional head) is not supported")
        if weight is not None and weight.shape != (num_classes,):
            raise RuntimeError(f"expected weight shape to be {(num_classes,)}, got {tuple(weight.shape)}")
        if label_smoothing < 0 or label_smoothing > 1.0:
            raise RuntimeError(f"expected label_smoothing to be in range [0, 1], got {label_smoothing}")
        self.register_buffer("weight", weight)
        self.num_classes = num_classes
        self.out_features = tuple(out_features)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.options = options
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.recompute = recompute
        self.linear = torch.nn.Linear(in_features, num_classes, bias=bias, device=device, dtype=dtype)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(input, self.linear.weight, target, linear_bias=self.linear.bias,
                                    weight=self.weight, reduction=self.reduction, ignore_index=self.ignore_index,
                                    label_smoothing=self.label_smoothing, chunk_size=self.chunk_size,
                                    chunk_bytes=self.chunk_bytes, recompute=self.recompute)

    def extra_repr(self) -> str:
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"bias={self.linear.bias is not None}, reduction={self.reduction}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}")


# Fake kernels and autograd formulas of the torch.ops.lossext.<loss>_linear_* ops.

# Positions of the differentiable arguments in the ops' argument lists (grad_mask's order).
_DIFFERENTIABLE = (0, 1, 2, 6)  # input, linear_weight, linear_bias, tensor_params
_NUM_ARGUMENTS = 12


def _gradient_shapes(input, linear_weight, linear_bias, tensor_params, grad_mask):
    accumulation = torch.float64 if input.dtype == torch.float64 else torch.float32
    rows, hidden = input.shape
    classes = linear_weight.shape[0]
    grad_input = input.new_empty((rows, hidden) if grad_mask[0] else (0,))
    grad_weight = input.new_empty((classes, hidden) if grad_mask[1] else (0,))
    grad_bias = input.new_empty((classes,) if grad_mask[2] and linear_bias is not None else (0,))
    count = 0 if tensor_params is None else tensor_params.shape[0]
    params_grad = input.new_empty((count,) if grad_mask[3] else (0,), dtype=accumulation)
    return grad_input, grad_weight, grad_bias, params_grad


def _setup_context(ctx, inputs, output) -> None:
    (input, linear_weight, linear_bias, target, weight, params, tensor_params, ignore_index, reduction,
     chunk_rows, chunk_bytes, grad_mask) = inputs
    ctx.fused = any(grad_mask)
    ctx.grad_mask = list(grad_mask)
    ctx.reduction = reduction
    ctx.settings = (list(params), ignore_index, reduction, chunk_rows, chunk_bytes)
    # The gradients are results, not functions of the inputs to differentiate further.
    ctx.mark_non_differentiable(*output[1:])
    if ctx.fused:
        ctx.save_for_backward(*output[1:])
    else:
        ctx.save_for_backward(input, linear_weight, linear_bias, target, weight, tensor_params)
    ctx.set_materialize_grads(False)


def _scaled(gradient: torch.Tensor, grad_loss: torch.Tensor) -> torch.Tensor:
    return gradient * grad_loss.to(gradient.dtype)


def _register(name: str) -> None:
    forward_op = f"lossext::{name}_linear_forward"

    @torch.library.register_fake(forward_op)
    def _forward_fake(input, linear_weight, linear_bias, target, weight, params, tensor_params, ignore_index,
                      reduction, chunk_rows, chunk_bytes, grad_mask):
        torch._check(input.dim() == 2, lambda: f"{forward_op}: input must be 2-D")
        loss = input.new_empty((input.shape[0],) if reduction == 0 else ())
        return (loss,) + _gradient_shapes(input, linear_weight, linear_bias, tensor_params, grad_mask)

    @torch.library.register_fake(f"lossext::{name}_linear_backward")
    def _backward_fake(grad_output, input, linear_weight, linear_bias, target, weight, params, tensor_params,
                       ignore_index, reduction, chunk_rows, chunk_bytes, grad_mask):
        torch._check(input.dim() == 2, lambda: f"lossext::{name}_linear_backward: input must be 2-D")
        return _gradient_shapes(input, linear_weight, linear_bias, tensor_params, grad_mask)

    def _backward(ctx, grad_loss, *_unused):
        gradients = [None] * _NUM_ARGUMENTS
        if grad_loss is None:
            return tuple(gradients)
        if ctx.fused:
            computed = ctx.saved_tensors
            wanted = ctx.grad_mask
            if not _ops._upstream_is_one(grad_loss):
                computed = [_scaled(g, grad_loss) for g in computed]
        else:
            input, linear_weight, linear_bias, target, weight, tensor_params = ctx.saved_tensors
            wanted = [bool(ctx.needs_input_grad[i]) for i in _DIFFERENTIABLE]
            computed = getattr(torch.ops.lossext, f"{name}_linear_backward").default(
                grad_loss, input, linear_weight, linear_bias, target, weight, ctx.settings[0], tensor_params,
                *ctx.settings[1:], wanted)
        for position, want, gradient in zip(_DIFFERENTIABLE, wanted, computed):
            gradients[position] = gradient if want else None
        return tuple(gradients)

    torch.library.register_autograd(forward_op, _backward, setup_context=_setup_context)


if _extension.extension_loaded():
    for _name in ROW_LOSS_NAMES:
        _register(_name)

    @torch.library.register_fake("lossext::linear_cross_entropy_evaluate")
    def _evaluate_fake(input, linear_weight, linear_bias, target, ignore_index, chunk_rows, chunk_bytes):
        accumulation = torch.float64 if input.dtype == torch.float64 else torch.float32
        rows = input.shape[0]
        return (input.new_empty((rows,), dtype=accumulation), input.new_empty((rows,), dtype=accumulation),
                input.new_empty((rows,), dtype=torch.int64), input.new_empty((rows,), dtype=torch.int64))
