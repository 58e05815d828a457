"""``evaluate.Metric`` wrappers of the attacks, usable offline by direct instantiation.

Input schema (all three): ``scores`` (float, one per sample: a loss-like score unless stated otherwise) and
``membership`` (int: 1 = member / forget sample, 0 = non-member / test sample). Extra keyword arguments of
``compute`` (``seed``, ``n_splits``, ``test_size``, ``higher_is_member``) go to the underlying function.
Passing members then non-members gives exactly :func:`~hf_unlearn.audit.mia` /
:func:`~hf_unlearn.audit.threshold_attack` on the two arrays (the order within each class is kept)::

    from hf_unlearn.audit import MIAMetric
    MIAMetric().compute(scores=forget_losses + test_losses, membership=[1] * nf + [0] * nt)

By default the metrics keep their data in memory (``keep_in_memory=True``) so no per-sample score is written to
the ``evaluate`` cache directory; pass ``keep_in_memory=False`` for distributed use (``num_process > 1``).
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np

from .attacks import mia, threshold_attack

_CITATION = """\
@article{trippa2024nablatau,
  title={$\\nabla \\tau$: Gradient-based and Task-Agnostic machine Unlearning},
  author={Trippa, Daniel and Campagnano, Cesare and Bucarelli, Maria Sofia and Tolomei, Gabriele
          and Silvestri, Fabrizio},
  journal={arXiv preprint arXiv:2403.14339},
  year={2024}
}
"""

_INPUTS = """
Args:
    scores (`list[float]`): one score per sample (loss-like: lower = more likely a member, unless
        `higher_is_member=True`).
    membership (`list[int]`): 1 for members (forget samples), 0 for non-members (test samples).
    seed (`int`, defaults to 0): seeds class balancing and the splits.
    n_splits (`int`, defaults to 10): number of stratified shuffle splits.
    test_size (`float`): held-out fraction per split.
"""

_FEATURES = datasets.Features({"scores": datasets.Value("float64"), "membership": datasets.Value("int64")})


def _split(scores: list[float], membership: list[int]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(membership, dtype=np.int64)
    if not np.isin(m, (0, 1)).all():
        raise ValueError("`membership` must hold only 1 (member / forget) and 0 (non-member / test).")
    return s[m == 1], s[m == 0]


class _OfflineMetric(evaluate.Metric):
    """Base: defaults ``keep_in_memory`` to True so scores never touch the disk cache."""

    def __init__(self, *args: Any, keep_in_memory: bool | None = None, **kwargs: Any) -> None:
        if keep_in_memory is None:
            keep_in_memory = kwargs.get("num_process", 1) == 1
        super().__init__(*args, keep_in_memory=keep_in_memory, **kwargs)


class MIAMetric(_OfflineMetric):
    """Population MIA (logistic regression on one feature); returns accuracy, accuracy_std, auc, n_per_class."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Membership-inference attack of the ∇τ paper: logistic regression on one per-sample "
            "score, balanced classes, mean held-out accuracy over stratified shuffle splits, and ROC AUC "
            "(members positive; 0.5 = indistinguishable).",
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=_FEATURES,
        )

    def _compute(
        self,
        scores: list[float],
        membership: list[int],
        seed: int = 0,
        n_splits: int = 10,
        test_size: float = 0.1,
        higher_is_member: bool = False,
    ) -> dict[str, float]:
        members, nonmembers = _split(scores, membership)
        result = mia(
            members, nonmembers, seed=seed, n_splits=n_splits, test_size=test_size, higher_is_member=higher_is_member
        )
        return result.to_dict()


class ThresholdAttackMetric(_OfflineMetric):
    """Best-threshold attack; returns accuracy, accuracy_std, threshold, direction, n_per_class."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Threshold membership-inference attack: the threshold (and direction) with the best "
            "accuracy on a training split, evaluated on the held-out split, averaged over stratified splits.",
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=_FEATURES,
        )

    def _compute(
        self,
        scores: list[float],
        membership: list[int],
        seed: int = 0,
        n_splits: int = 10,
        test_size: float = 0.5,
        higher_is_member: bool | None = None,
    ) -> dict[str, Any]:
        members, nonmembers = _split(scores, membership)
        result = threshold_attack(
            members, nonmembers, seed=seed, n_splits=n_splits, test_size=test_size, higher_is_member=higher_is_member
        )
        return result.to_dict()


class UnlearningAuditMetric(_OfflineMetric):
    """Summary from per-sample losses, correctness and membership: accuracies, mean losses, loss-MIA.

    Extra input ``correct`` (float, 1/0 or a token-accuracy fraction). Returns ``forget_accuracy``,
    ``test_accuracy``, ``forget_loss``, ``test_loss``, ``mia_accuracy``, ``mia_accuracy_std``, ``mia_auc``.
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Forget/test accuracy and mean loss plus the loss-based population MIA.",
            citation=_CITATION,
            inputs_description=_INPUTS + "    correct (`list[float]`): 1/0 correctness (or token accuracy).\n",
            features=datasets.Features(
                {
                    "scores": datasets.Value("float64"),
                    "membership": datasets.Value("int64"),
                    "correct": datasets.Value("float64"),
                }
            ),
        )

    def _compute(
        self, scores: list[float], membership: list[int], correct: list[float], seed: int = 0
    ) -> dict[str, float]:
        m = np.asarray(membership, dtype=np.int64)
        members, nonmembers = _split(scores, membership)
        c = np.asarray(correct, dtype=np.float64)
        result = mia(members, nonmembers, seed=seed)
        return {
            "forget_accuracy": float(c[m == 1].mean()),
            "test_accuracy": float(c[m == 0].mean()),
            "forget_loss": float(members.mean()),
            "test_loss": float(nonmembers.mean()),
            "mia_accuracy": result.accuracy,
            "mia_accuracy_std": result.accuracy_std,
            "mia_auc": result.auc,
        }
