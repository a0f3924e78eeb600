"""Classification metrics of Berlyand, Creese & Jabin (2021): margins, accuracy, top-k, acc_at, delta p.

Plain PyTorch on any device. `input` holds logits and `probs` probabilities, (N, C) with
class dimension 1; rows whose target equals `ignore_index` are left out of every metric.
"""

import torch

__all__ = ["margin", "accuracy", "top_k_accuracy", "close_enough_accuracy", "misclassification_gap"]


def _kept_rows(scores: torch.Tensor, target: torch.Tensor, ignore_index: int):
    if scores.dim() != 2 or target.shape != scores.shape[:1]:
        raise ValueError(f"expected (N, C) scores and (N,) targets, got {tuple(scores.shape)} and "
                         f"{tuple(target.shape)}")
    keep = target != ignore_index
    return scores[keep], target[keep].long()


def _runner_up(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """max_{j != t} scores_j per row (-inf with one class)."""
    mask = torch.nn.functional.one_hot(target, scores.shape[1]).bool()
    return scores.masked_fill(mask, float("-inf")).amax(dim=1)


def margin(input: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """delta X = X_t - max_{j != t} X_j per kept row: positive means correctly classified."""
    scores, t = _kept_rows(input, target, ignore_index)
    return scores.gather(1, t[:, None])[:, 0] - _runner_up(scores, t)


def accuracy(input: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Fraction of kept rows whose target has the largest score (ties count as correct)."""
    scores, t = _kept_rows(input, target, ignore_index)
    return (scores.gather(1, t[:, None])[:, 0] >= scores.amax(dim=1)).double().mean()


def top_k_accuracy(input: torch.Tensor, target: torch.Tensor, k: int, ignore_index: int = -100) -> torch.Tensor:
    """Fraction of kept rows whose target is among the k largest scores (fewer than k others score higher)."""
    if k < 1:
        raise ValueError(f"top_k_accuracy: k must be at least 1, got {k}")
    scores, t = _kept_rows(input, target, ignore_index)
    higher = (scores > scores.gather(1, t[:, None])).sum(dim=1)
    return (higher < k).double().mean()


def close_enough_accuracy(probs: torch.Tensor, target: torch.Tensor, at: float,
                          ignore_index: int = -100) -> torch.Tensor:
    """acc_at: fraction of kept rows with p_t >= max_j p_j - at."""
    scores, t = _kept_rows(probs, target, ignore_index)
    return (scores.gather(1, t[:, None])[:, 0] >= scores.amax(dim=1) - at).double().mean()


def misclassification_gap(probs: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """delta p = p_t - max_j p_j (eq. 19) for the misclassified kept rows (p_t below the max)."""
    scores, t = _kept_rows(probs, target, ignore_index)
    gap = scores.gather(1, t[:, None])[:, 0] - scores.amax(dim=1)
    return gap[gap < 0]
