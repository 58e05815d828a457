"""The NeurIPS 2023 unlearning competition's per-example forgetting score (Triantafillou et al. 2024,
arXiv 2406.09073).

A population MIA asks whether forget rows *as a group* look unseen; the competition asks, for each forget example,
whether any threshold on that example's output tells the models of one unlearning method (the same original, N
unlearning seeds) from N models retrained without the forget set. Per example:

1. the output of every model on the example: the logit-scaled confidence ``log p_y − log(1 − p_y)``
   (:func:`logit_confidence`);
2. for every decision rule of two families, its false-positive and false-negative rates over the models: one
   threshold (above it: the group with the larger median), and an interval around the peakier group (width within
   ``INTERVAL_SLACK`` of that group's range); thresholds on a grid of ``THRESHOLDS_PER_UNIT`` per unit;
3. the rule's ε = max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR), clipped at 0 (δ = ``DELTA``); a rule
   with FPR = FNR = 0 separates perfectly (ε = ∞); a rule with exactly one of them 0 is discarded (too few samples to
   say); the example's ε is the largest, capped at ``EPSILON_CAP`` (so is a group whose outputs are nearly constant
   against the other's spread);
4. the example's score 2^−k for ε in the k-th bucket of width 0.5, k < 2 ⌈log(N − 1)⌉ (with N models per side no
   finite ε can exceed about log(N − 1): FPR and FNR move in steps of 1/N), 0 beyond.

The forgetting quality F is the mean score over the forget set (1: no rule tells the unlearned models from retrained
ones on any example), and the competition's score is F × (RA / RA_retrained) × (TA / TA_retrained). Written from the
paper's description and its published estimator's constants; with N models per side F resolves ε only in steps of
log-ratios of multiples of 1/N, and a retrained group scored against N other retrained models does not reach 1: that
F is the ceiling of the setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ._batching import model_outputs

__all__ = [
    "DELTA",
    "EPSILON_CAP",
    "CompetitionScore",
    "competition_score",
    "example_epsilons",
    "example_scores",
    "forgetting_quality",
    "logit_confidence",
    "model_confidences",
]

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
INTERVAL_SLACK = 2.0
BUCKET = 0.5


def logit_confidence(logits, labels) -> np.ndarray:
    """``log p_y − log(1 − p_y)`` per row of ``logits`` (any leading shape, classes last) for the true ``labels``,
    computed in log space (finite where the softmax saturates)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    true = np.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    others = logits.copy()
    np.put_along_axis(others, labels[..., None], -np.inf, axis=-1)
    top = others.max(axis=-1)
    return true - (top + np.log(np.exp(others - top[..., None]).sum(axis=-1)))


def model_confidences(model, dataset, *, data_collator=None, batch_size: int = 64) -> np.ndarray:
    """:func:`logit_confidence` of a single-label classifier on every row of ``dataset`` (tokenized, with
    ``labels``), in float64 from the logits (a per-sample loss in float32 rounds to 0 on rows the model is sure of)."""
    logits, labels, _ = model_outputs(model, dataset, data_collator=data_collator, batch_size=batch_size)
    return logit_confidence(logits, labels)


def _count_at_least(sorted_values: np.ndarray, t: np.ndarray) -> np.ndarray:
    return len(sorted_values) - np.searchsorted(sorted_values, t, side="left")


def _count_within(sorted_values: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_values, right, side="right") - np.searchsorted(sorted_values, left, side="left")


def _grid(low: float, high: float) -> np.ndarray:
    return np.linspace(low, high, max(2, math.ceil((high - low) * THRESHOLDS_PER_UNIT)))


def _rule_rates(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, FNR) of every rule of both families; ``pos`` is the group with the larger median."""
    pos, neg = np.sort(pos), np.sort(neg)
    # one threshold: at or above it, predict the positive group
    t = _grid(min(pos[0], neg[0]), max(pos[-1], neg[-1]))
    fpr = [_count_at_least(neg, t) / len(neg)]
    fnr = [1 - _count_at_least(pos, t) / len(pos)]
    # an interval around the peakier group (as wide as its range, give or take the slack): inside, predict it
    peaky, broad = (pos, neg) if pos[-1] - pos[0] < neg[-1] - neg[0] else (neg, pos)
    width = peaky[-1] - peaky[0]
    right = _grid(peaky[0] + width - INTERVAL_SLACK, peaky[-1] + INTERVAL_SLACK)
    offsets = np.linspace(-INTERVAL_SLACK, INTERVAL_SLACK, math.ceil(2 * INTERVAL_SLACK * THRESHOLDS_PER_UNIT))
    left = (right[:, None] - width + offsets[None, :]).ravel()
    right = np.repeat(right, len(offsets))
    fpr.append(_count_within(broad, left, right) / len(broad))
    fnr.append(1 - _count_within(peaky, left, right) / len(peaky))
    return np.concatenate(fpr), np.concatenate(fnr)


def _epsilon(pos: np.ndarray, neg: np.ndarray, delta: float) -> float:
    spreads = sorted([np.ptp(pos), np.ptp(neg)])
    if spreads[1] == 0:  # both groups constant: the same value or perfectly separated
        return 0.0 if pos[0] == neg[0] else EPSILON_CAP
    if spreads[0] / spreads[1] < 0.01:  # one group nearly constant against the other's spread
        return EPSILON_CAP
    fpr, fnr = _rule_rates(pos, neg)
    if np.any((fpr == 0) & (fnr == 0)):
        return EPSILON_CAP
    keep = (fpr > 0) & (fnr > 0)
    if not keep.any():
        return 0.0
    fpr, fnr = fpr[keep], fnr[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    return float(np.clip(np.nanmax(eps, initial=0.0), 0.0, EPSILON_CAP))


def _as_matrix(outputs, name: str) -> np.ndarray:
    array = np.asarray(outputs, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be [models, examples] (one output per model and forget example); got shape "
                         f"{array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite outputs: pass finite per-example outputs (logit_confidence).")
    return array


def _checked(unlearned, retrained) -> tuple[np.ndarray, np.ndarray]:
    u, r = _as_matrix(unlearned, "unlearned"), _as_matrix(retrained, "retrained")
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"unlearned covers {u.shape[1]} examples, retrained {r.shape[1]}: score the same forget "
                         "examples, in the same order, under both groups of models.")
    if min(len(u), len(r)) < 3:
        raise ValueError(f"{len(u)} unlearned and {len(r)} retrained models: the score needs at least 3 of each "
                         "(with N models no ε beyond log(N − 1) is measurable; the competition used 512).")
    return u, r


def example_epsilons(unlearned, retrained, delta: float = DELTA) -> np.ndarray:
    """Per forget example, the ε of the best decision rule telling the unlearned models' outputs from the retrained
    ones' (``[models, examples]`` arrays, e.g. :func:`logit_confidence`); 0 = no rule does better than chance."""
    u, r = _checked(unlearned, retrained)
    eps = np.empty(u.shape[1])
    for i in range(u.shape[1]):
        ui, ri = u[:, i], r[:, i]
        pos, neg = (ri, ui) if np.median(ri) > np.median(ui) else (ui, ri)
        eps[i] = _epsilon(pos, neg, delta)
    return eps


def example_scores(epsilons, n_models: int) -> np.ndarray:
    """Each ε's score: 2^−k in the k-th bucket of width 0.5, below ⌈log(n_models − 1)⌉; 0 beyond."""
    eps = np.asarray(epsilons, dtype=np.float64)
    buckets = int(math.ceil(math.log(max(n_models - 1, 1))) / BUCKET)
    k = np.floor(eps / BUCKET)
    return np.where(k < buckets, 0.5 ** np.minimum(k, 1023), 0.0)


def forgetting_quality(unlearned, retrained, delta: float = DELTA) -> float:
    """F: the mean per-example score over the forget set (1 = no example tells the groups apart)."""
    u, _ = _checked(unlearned, retrained)
    return float(example_scores(example_epsilons(unlearned, retrained, delta), len(u)).mean())


@dataclass
class CompetitionScore:
    """F, the utility ratios and their product, with the per-example ε and scores."""

    forgetting_quality: float
    retain_ratio: float
    test_ratio: float
    score: float
    n_models: int
    epsilons: list[float]
    example_scores: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def _mean(value: float | Sequence[float]) -> float:
    return float(np.mean(value))


def competition_score(unlearned, retrained, *, retain_acc, test_acc, retrained_retain_acc, retrained_test_acc,
                      delta: float = DELTA) -> CompetitionScore:
    """The competition's score F × (RA / RA_retrained) × (TA / TA_retrained).

    ``unlearned`` / ``retrained``: per-example outputs on the forget set, ``[models, examples]``. The accuracies are
    a number or one per model (averaged): retain and test accuracy of the unlearned and of the retrained models.
    """
    u, _ = _checked(unlearned, retrained)
    eps = example_epsilons(unlearned, retrained, delta)
    scores = example_scores(eps, len(u))
    ratios = []
    for name, value, ref in (("retain", retain_acc, retrained_retain_acc), ("test", test_acc, retrained_test_acc)):
        if _mean(ref) <= 0:
            raise ValueError(f"The retrained models' {name} accuracy is {_mean(ref)}: the ratio needs a positive one.")
        ratios.append(_mean(value) / _mean(ref))
    f = float(scores.mean())
    return CompetitionScore(forgetting_quality=f, retain_ratio=ratios[0], test_ratio=ratios[1],
                            score=f * ratios[0] * ratios[1], n_models=len(u), epsilons=eps.tolist(),
                            example_scores=scores.tolist())
