"""Membership-inference attacks on per-sample scores (scikit-learn).

Conventions, shared by every function here:

- *Members* are the forget samples (positive class, label 1); *non-members* the test samples (label 0).
- Both classes are balanced by seeded subsampling (without replacement) of the larger one to the smaller count,
  so 0.5 accuracy is chance level; ``n_per_class`` reports that count.
- ``higher_is_member=False`` (the default) means the score is loss-like: a **lower** score suggests membership
  (loss, entropy, zlib ratio). Min-K% log-probabilities are the exception (``higher_is_member=True``).
- AUC is the ROC AUC with members positive and ``-score`` (or ``score`` when ``higher_is_member``) as the member
  score. It is **not** folded: 0.5 = indistinguishable, > 0.5 = the forget set still looks memorised, < 0.5 =
  the forget set looks *less* familiar than unseen data (over-unlearning, itself detectable).
- Accuracies come from classifiers that learn the direction themselves, so they are >= 0.5 up to noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..data.sampling import seeded_subset

MIN_SAMPLES_PER_CLASS = 10


class _Result:
    """A dataclass attack result that round-trips through ``audit.json`` (``to_dict`` / ``from_dict``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass
class MIAResult(_Result):
    """Population MIA outcome: mean/std of held-out accuracy over the splits, unfolded AUC, samples per class."""

    accuracy: float
    accuracy_std: float
    auc: float
    n_per_class: int


@dataclass
class ThresholdResult(_Result):
    """Threshold attack: held-out accuracy (mean/std over splits) and the rule fitted on all balanced samples."""

    accuracy: float
    accuracy_std: float
    threshold: float
    direction: str  # "<" : member if score < threshold; ">" : member if score > threshold
    n_per_class: int


def _as_scores(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(
            f"`{name}` holds {bad} NaN/inf value(s); attacks need finite scores. Drop those samples first "
            "(e.g. sequences without supervised tokens) or fix the model's numerics."
        )
    return arr


def balanced(
    member_scores: Any, nonmember_scores: Any, seed: int = 0, min_per_class: int = MIN_SAMPLES_PER_CLASS
) -> tuple[np.ndarray, np.ndarray]:
    """Validate both score arrays and subsample the larger one (seeded) to the smaller count.

    Returns ``(x, y)``: the scores (members first) and membership labels (1 = member).
    """
    members = _as_scores(member_scores, "member_scores")
    nonmembers = _as_scores(nonmember_scores, "nonmember_scores")
    n = min(len(members), len(nonmembers))
    if n < min_per_class:
        raise ValueError(
            f"A membership-inference attack needs at least {min_per_class} samples per class; got "
            f"{len(members)} members (forget) and {len(nonmembers)} non-members (test). Use larger forget/test "
            "sets (or a larger max_samples)."
        )
    members = members[seeded_subset(len(members), n, seed)]
    nonmembers = nonmembers[seeded_subset(len(nonmembers), n, seed + 1)]
    x = np.concatenate([members, nonmembers])
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    return x, y


def member_auc(x: np.ndarray, y: np.ndarray, higher_is_member: bool = False) -> float:
    """ROC AUC with members positive; loss-like scores are negated (see the module docstring)."""
    return float(roc_auc_score(y, x if higher_is_member else -x))


def mia(
    member_scores: Any,
    nonmember_scores: Any,
    *,
    seed: int = 0,
    n_splits: int = 10,
    test_size: float = 0.1,
    higher_is_member: bool = False,
) -> MIAResult:
    """The ∇τ paper's population MIA: logistic regression on one per-sample feature (usually the loss).

    Members (forget) and non-members (test) are balanced by seeded subsampling; accuracy is the mean (and std)
    over ``StratifiedShuffleSplit(n_splits, test_size, random_state=seed)`` of the held-out accuracy
    (``test_size=0.1`` is scikit-learn's default, as in the NeurIPS 2023 unlearning challenge kit). The feature
    is standardised inside each split before the (default, L2-regularised) logistic regression, which makes the
    attack independent of the feature's scale; on raw features the regularisation can flatten a small-range
    feature (e.g. entropies, or near-zero losses) into a constant prediction.
    ``auc`` follows the module convention (0.5 = indistinguishable, > 0.5 = memorised).
    Raises ``ValueError`` with fewer than 10 samples per class or with NaN/inf scores.
    """
    x, y = balanced(member_scores, nonmember_scores, seed)
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
    attacker = make_pipeline(StandardScaler(), LogisticRegression())
    acc = cross_val_score(attacker, x[:, None], y, cv=cv, scoring="accuracy")
    return MIAResult(
        accuracy=float(np.mean(acc)),
        accuracy_std=float(np.std(acc)),
        auc=member_auc(x, y, higher_is_member),
        n_per_class=int(len(y) // 2),
    )


def _best_threshold(x: np.ndarray, y: np.ndarray, direction: str | None = None) -> tuple[float, str]:
    """Threshold (and direction, unless fixed) maximising accuracy on ``(x, y)``, swept with sklearn's ROC curve.

    Rules: ``"<"`` = member if score < threshold, ``">"`` = member if score > threshold. Candidate thresholds
    are the midpoints between distinct scores plus one below the minimum and one above the maximum; ties in
    accuracy go to the lowest threshold.
    """
    # ROC of "member if -x >= -v" over every distinct score v (ascending), after the (0, 0) point: index k is the
    # rule that calls the k smallest distinct scores members, i.e. "x < edges[k]".
    fpr, tpr, thr = roc_curve(y, -x, drop_intermediate=False)
    n_mem = int(y.sum())
    n_non = len(y) - n_mem
    correct = np.rint(tpr * n_mem) + (n_non - np.rint(fpr * n_non))  # members called members + non-members not
    acc = {"<": correct / len(y)}
    acc[">"] = 1.0 - acc["<"]
    vals = -thr[1:]
    edges = np.concatenate([[vals[0] - 1.0], (vals[:-1] + vals[1:]) / 2, [vals[-1] + 1.0]])
    best = [direction] if direction is not None else ["<", ">"]
    d = max(best, key=lambda r: acc[r].max())
    return float(edges[int(np.argmax(acc[d]))]), d


def threshold_attack(
    member_scores: Any,
    nonmember_scores: Any,
    *,
    seed: int = 0,
    n_splits: int = 10,
    test_size: float = 0.5,
    higher_is_member: bool | None = None,
) -> ThresholdResult:
    """A simple threshold attack: pick the best threshold on a training split, report held-out accuracy.

    Balanced like :func:`mia`; repeated over ``n_splits`` stratified splits (mean and std). The direction is
    learned with the threshold when ``higher_is_member`` is ``None`` (so over-unlearning is detected too);
    ``False`` fixes "member if score < t" (loss-like), ``True`` "member if score > t". The returned
    ``threshold``/``direction`` are fitted on all balanced samples, for information.
    """
    x, y = balanced(member_scores, nonmember_scores, seed)
    fixed = None if higher_is_member is None else (">" if higher_is_member else "<")
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
    accs = []
    for train, test in cv.split(x[:, None], y):
        t, d = _best_threshold(x[train], y[train], fixed)
        pred = x[test] < t if d == "<" else x[test] > t
        accs.append(float(np.mean(pred.astype(np.int64) == y[test])))
    t, d = _best_threshold(x, y, fixed)
    return ThresholdResult(
        accuracy=float(np.mean(accs)),
        accuracy_std=float(np.std(accs)),
        threshold=t,
        direction=d,
        n_per_class=int(len(y) // 2),
    )


def lm_attacks(
    forget_stats: dict[str, np.ndarray], test_stats: dict[str, np.ndarray], *, seed: int = 0
) -> dict[str, float]:
    """Reference-free LM attacks as AUCs (module convention): loss (token-mean NLL), Min-K% and zlib.

    Takes :func:`~hf_unlearn.audit.sample_stats` outputs of a causal LM; sequences without supervised tokens
    (NaN) are dropped. Classes are balanced as in :func:`mia`.
    """
    for name, stats in (("forget_stats", forget_stats), ("test_stats", test_stats)):
        missing = [k for k in ("nll", "min_k", "zlib") if k not in stats]
        if missing:
            raise ValueError(f"`{name}` lacks {missing}; lm_attacks needs sample_stats of a causal LM.")
    keep_f = np.isfinite(forget_stats["nll"])
    keep_t = np.isfinite(test_stats["nll"])
    out: dict[str, float] = {}
    for key, name, higher in (("nll", "loss_auc", False), ("min_k", "min_k_auc", True), ("zlib", "zlib_auc", False)):
        x, y = balanced(forget_stats[key][keep_f], test_stats[key][keep_t], seed)
        out[name] = member_auc(x, y, higher)
    out["n_per_class"] = int(min(keep_f.sum(), keep_t.sum()))
    return out


@dataclass
class ReferenceAttackResult(_Result):
    """Per-example reference-model attack (RMIA): unfolded AUC and TPR at low false-positive rates.

    ``tpr_at_1pct_fpr`` / ``tpr_at_0_1pct_fpr`` are read off the ROC curve at the largest threshold whose FPR does
    not exceed 1 % / 0.1 %; with fewer than 100 / 1,000 non-members they are measured at FPR 0 (the curve's
    resolution is ``1 / n_nonmembers``). ``null_auc_std`` is the standard deviation of the AUC of a model whose
    scores carry no membership signal (Mann–Whitney null), the yardstick for "near chance".
    """

    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_0_1pct_fpr: float
    null_auc_std: float
    n_members: int
    n_nonmembers: int
    n_population: int
    n_reference_models: int
    offline_a: float


RMIA_SPLITS = ("forget", "test", "population")


def tpr_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float) -> float:
    """True-positive rate at the largest threshold whose false-positive rate is ``<= fpr`` (sklearn ROC)."""
    fprs, tprs, _ = roc_curve(y, score, drop_intermediate=False)
    return float(tprs[np.searchsorted(fprs, fpr, side="right") - 1])


def _rmia_probabilities(target: dict[str, Any], references: list[dict[str, Any]]
                        ) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """``Pr(x | model) = exp(-loss)`` per split of the target and each reference; ``ValueError`` for a missing split,
    row counts that differ between models, or too few rows."""
    def probs(losses: dict[str, Any], name: str) -> dict[str, np.ndarray]:
        missing = [k for k in RMIA_SPLITS if k not in losses]
        if missing:
            raise ValueError(f"`{name}` lacks the per-sample losses of {missing}; pass {list(RMIA_SPLITS)}.")
        return {k: np.exp(-_as_scores(losses[k], f"{name}[{k!r}]")) for k in RMIA_SPLITS}

    tgt = probs(target, "target")
    refs = [probs(r, f"references[{i}]") for i, r in enumerate(references)]
    for i, ref in enumerate(refs):
        for k in RMIA_SPLITS:
            if len(ref[k]) != len(tgt[k]):
                raise ValueError(
                    f"references[{i}][{k!r}] has {len(ref[k])} rows, the target {len(tgt[k])}: score the same rows "
                    "with every model."
                )
    if min(len(tgt["forget"]), len(tgt["test"])) < MIN_SAMPLES_PER_CLASS or len(tgt["population"]) < 1:
        raise ValueError(
            f"RMIA needs at least {MIN_SAMPLES_PER_CLASS} forget and test rows and one population row; got "
            f"{len(tgt['forget'])}, {len(tgt['test'])} and {len(tgt['population'])}."
        )
    return tgt, refs


def rmia(
    target: dict[str, Any],
    references: list[dict[str, Any]],
    *,
    offline_a: float = 0.3,
    gamma: float = 1.0,
) -> ReferenceAttackResult:
    """RMIA (Zarifzadeh et al., ICML 2024), offline: a per-example likelihood-ratio test against reference models.

    ``target`` and each of ``references`` map ``"forget"`` (members), ``"test"`` (non-members) and
    ``"population"`` (held-out rows, e.g. the τ rows; never forget or test rows) to per-sample losses
    ``-log Pr(x | model)`` on the **same rows in the same order**. The reference models must not have seen the
    forget rows (e.g. models retrained without them). For each target row ``x``:
    ``Pr(x) = (1 + a)/2 · mean_ref Pr(x | ref) + (1 − a)/2`` (the offline approximation, ``a = offline_a``),
    ``LR(x, z) = [Pr(x | θ) / Pr(x)] / [Pr(z | θ) / Pr(z)]`` and the score is the fraction of population rows ``z``
    with ``LR(x, z) > gamma``. AUC and TPRs take forget rows as positives (AUC 0.5 = no membership signal).
    It costs the reference models' training and one forward pass of each over forget, test and population rows.
    """
    if not references:
        raise ValueError("rmia needs at least one reference model's losses (a model that never saw the forget rows).")
    if not 0 <= offline_a <= 1:
        raise ValueError(f"offline_a must be in [0, 1], got {offline_a}.")

    tgt, refs = _rmia_probabilities(target, references)

    def ratio(k: str) -> np.ndarray:
        p_out = np.mean([ref[k] for ref in refs], axis=0)
        return tgt[k] / ((1 + offline_a) / 2 * p_out + (1 - offline_a) / 2)

    z = np.sort(ratio("population"))
    x = np.concatenate([ratio("forget"), ratio("test")])
    # score(x) = #{z : ratio(x) / ratio(z) > gamma} / |Z| = #{z : ratio(z) < ratio(x) / gamma} / |Z|
    score = np.searchsorted(z, x / gamma, side="left") / len(z)
    n_m, n_n = len(tgt["forget"]), len(tgt["test"])
    y = np.concatenate([np.ones(n_m, dtype=np.int64), np.zeros(n_n, dtype=np.int64)])
    return ReferenceAttackResult(
        auc=float(roc_auc_score(y, score)),
        tpr_at_1pct_fpr=tpr_at_fpr(y, score, 0.01),
        tpr_at_0_1pct_fpr=tpr_at_fpr(y, score, 0.001),
        null_auc_std=float(np.sqrt((n_m + n_n + 1) / (12.0 * n_m * n_n))),
        n_members=n_m,
        n_nonmembers=n_n,
        n_population=len(z),
        n_reference_models=len(refs),
        offline_a=float(offline_a),
    )
