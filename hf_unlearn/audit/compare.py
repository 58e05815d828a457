"""Put several audit reports side by side and judge each model against the retrained one (the gold standard).

Each model other than the references gets one verdict per criterion, with one of five outcomes:

- ``pass`` / ``fail``: the model is within / outside the tolerance of the target.
- ``inconclusive``: the measurement is noisier than the tolerance (an attack whose accuracy std over its splits
  exceeds ``tol["mia"]``): more forget rows are needed before it can say anything. Never counted as a failure.
- ``not measurable``: the setting cannot tell forgetting from doing nothing on this criterion: the original
  model is itself within tolerance plus twice the noise of the target (it never memorised what is to be
  forgotten, or the attack cannot see it). Every model gets this outcome on that criterion.
- ``n/a``: the criterion cannot be judged (no target).

Every registered attack (:data:`~hf_unlearn.audit.registry.ATTACKS`) puts its ``compare`` rows in the table and
the gaps, so a new attack needs no change here.

The original model ("do nothing") is never judged against itself: its line states whether it *separates* from
the target on each criterion, i.e. whether the criterion measures anything here.

Targets (tolerances in :data:`DEFAULT_TOLERANCES`, overridable):

- ``mia_loss`` / ``mia_entropy`` (and any registered attack with ``judged=True``, see
  :class:`~hf_unlearn.audit.registry.Attack`): the retrained model's MIA accuracy (without one: 0.5, chance);
  noise = the attack's accuracy std.
- ``forget_accuracy``: the retrained model's forget accuracy (without one: the model's own test accuracy);
  noise = the binomial standard error on the forget rows.
- ``ref_attack_auc`` (only when reports carry the reference attack): 0.5 (chance), or the retrained model's
  value when it has one; the tolerance is ``max(tol["ref_attack_auc"], 2 × null std of the AUC)``.
- ``test_accuracy``: at least the retrained model's minus ``tol["test_accuracy_drop"]`` (without a retrained
  model: the original's); the anchor model itself is not judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .registry import ATTACKS
from .report import UnlearningReport

DEFAULT_TOLERANCES: dict[str, float] = {
    "mia": 0.03, "forget_accuracy": 0.03, "test_accuracy_drop": 0.01, "ref_attack_auc": 0.03,
}
_EPS = 1e-9  # so that a gap equal to the tolerance passes despite float rounding
OUTCOMES = ("pass", "fail", "inconclusive", "not measurable", "n/a", "separates")

SPLIT_CRITERIA: dict[str, str] = {
    "forget_accuracy": "forget accuracy",
    "retain_accuracy": "retain accuracy",
    "test_accuracy": "test accuracy",
    "forget_loss": "forget loss",
    "test_loss": "test loss",
}
REF_CRITERIA: dict[str, str] = {
    "ref_attack_auc": "RMIA AUC (reference models)",
    "ref_attack_tpr_at_1pct_fpr": "RMIA TPR at 1% FPR",
}


def attack_criteria(report: UnlearningReport) -> dict[str, tuple[str, float | None, float, bool]]:
    """``{criterion: (label, value, noise std, judged)}`` of every registered attack the report has a result for."""
    out: dict[str, tuple[str, float | None, float, bool]] = {}
    for attack in ATTACKS.values():
        result = report.attack_result(attack.name)
        if result is not None:
            out.update({key: (label, value, noise, attack.judged)
                        for key, label, value, noise in attack.compared(result)})
    return out


def criterion_labels(reports) -> dict[str, str]:
    """``{criterion: label}`` in table order: the splits, the registered attacks (in registry order), RMIA."""
    attacks: dict[str, str] = {}
    for name in ATTACKS:  # registry order, whichever report has the attack
        for rep in reports:
            result = rep.attack_result(name)
            if result is not None:
                attacks.update({key: label for key, label, _, _ in ATTACKS[name].compared(result)})
    return {**SPLIT_CRITERIA, **attacks, **REF_CRITERIA}


def judged_criteria(reports) -> list[str]:
    """The criteria judged against a target: judged attacks (registry order), forget accuracy, the RMIA AUC."""
    attacks = {k: None for rep in reports for k, row in attack_criteria(rep).items() if row[3]}
    return [*(c for c in criterion_labels(reports) if c in attacks), "forget_accuracy", "ref_attack_auc"]


def _judged_attack(report: UnlearningReport | None, criterion: str) -> bool:
    row = None if report is None else attack_criteria(report).get(criterion)
    return row is not None and row[3]


def criterion_value(report: UnlearningReport, criterion: str) -> float | None:
    """The number a criterion reads from a report (attack criteria read the attack's ``compare`` rows, e.g. the
    MIA accuracy)."""
    if criterion.startswith("ref_attack_"):
        ref = report.ref_attack
        return None if ref is None else getattr(ref, criterion[len("ref_attack_"):])
    if criterion in SPLIT_CRITERIA:
        return getattr(report, criterion)
    row = attack_criteria(report).get(criterion)
    return None if row is None else row[1]


def _noise(report: UnlearningReport, criterion: str) -> float:
    """One standard deviation of a criterion's measurement noise (see the module docstring)."""
    row = attack_criteria(report).get(criterion)
    if row is not None:
        return row[2]
    if criterion == "forget_accuracy":
        p = min(max(report.forget_accuracy, 0.0), 1.0)
        return (p * (1 - p) / max(report.n_forget, 1)) ** 0.5
    if criterion == "ref_attack_auc" and report.ref_attack is not None:
        return report.ref_attack.null_auc_std
    return 0.0


@dataclass
class Verdict:
    """One model judged on one criterion; ``outcome`` is one of :data:`OUTCOMES`, ``passed`` is ``True`` only for
    ``pass``, ``False`` only for ``fail`` and ``None`` otherwise."""

    model: str
    criterion: str
    outcome: str
    value: float | None
    target: float | None
    tolerance: float
    reference: str
    note: str = ""
    label: str = ""  # the criterion's label in lines (not in to_dict)

    @property
    def passed(self) -> bool | None:
        return {"pass": True, "fail": False}.get(self.outcome)

    @property
    def delta(self) -> float | None:
        return None if self.value is None or self.target is None else self.value - self.target

    def line(self) -> str:
        name = self.label or {**SPLIT_CRITERIA, **REF_CRITERIA}.get(self.criterion, self.criterion)
        note = f"; {self.note}" if self.note else ""
        if self.value is None or self.target is None:
            return f"{self.model}: {name}: {self.outcome} ({self.reference}{note})"
        status = self.outcome.upper() if self.outcome in ("pass", "fail") else self.outcome
        if self.criterion == "test_accuracy":
            return (f"{self.model}: {name} {self.value:.4f} vs {self.reference} {self.target:.4f} "
                    f"(Δ {self.delta:+.4f}, allowed drop {self.tolerance:.3f}{note}) → {status}")
        return (f"{self.model}: {name} {self.value:.4f} vs {self.reference} {self.target:.4f} "
                f"(Δ {self.delta:+.4f}, tol ±{self.tolerance:.3f}{note}) → {status}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("label")
        return {**out, "passed": self.passed, "delta": self.delta, "line": self.line()}


@dataclass
class Comparison:
    """Reports side by side, each model's gap to the retrained model, and verdict lines."""

    reports: dict[str, UnlearningReport]
    tolerances: dict[str, float]
    gaps: dict[str, dict[str, float | None]] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    def labels(self) -> dict[str, str]:
        """``{criterion: label}`` of every criterion the reports can have, in table order."""
        return criterion_labels(self.reports.values())

    def criteria(self) -> list[str]:
        """Criteria that at least one report has a value for."""
        return [c for c in self.labels() if any(criterion_value(r, c) is not None for r in self.reports.values())]

    def outcomes(self, model: str) -> dict[str, str]:
        """``{criterion: outcome}`` of one model."""
        return {v.criterion: v.outcome for v in self.verdicts if v.model == model}

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": {name: r.to_dict() for name, r in self.reports.items()},
            "tolerances": dict(self.tolerances),
            "gaps_to_retrained": self.gaps,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }

    def to_markdown(self) -> str:
        names = list(self.reports)
        head = "| criterion | " + " | ".join(names) + " |"
        sep = "|---|" + "---:|" * len(names)
        lines, labels = ["**Unlearning comparison**", "", head, sep], self.labels()
        for c in self.criteria():
            cells = [_fmt(criterion_value(self.reports[n], c)) for n in names]
            lines.append(f"| {labels[c]} | " + " | ".join(cells) + " |")
        if self.gaps:
            gap_names = list(self.gaps)
            lines += ["", "Gap to the retrained model (model − retrained):", ""]
            lines += ["| criterion | " + " | ".join(gap_names) + " |", "|---|" + "---:|" * len(gap_names)]
            for c in self.criteria():
                cells = [_fmt(self.gaps[n].get(c), signed=True) for n in gap_names]
                lines.append(f"| {labels[c]} | " + " | ".join(cells) + " |")
        if self.verdicts:
            lines += ["", "Verdicts (pass / fail / inconclusive / not measurable; see hf_unlearn.audit.compare):", ""]
            lines += [f"- {v.line()}" for v in self.verdicts]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def compare(
    reports: Mapping[str, UnlearningReport] | None = None,
    /,
    *,
    original: UnlearningReport | None = None,
    unlearned: UnlearningReport | None = None,
    retrained: UnlearningReport | None = None,
    tolerances: Mapping[str, float] | None = None,
    **others: UnlearningReport,
) -> Comparison:
    """Compare audit reports: ``compare(original=a, unlearned=b, retrained=c)`` or ``compare({"name": r, ...})``.

    The names ``"original"`` and ``"retrained"`` (keyword or dict key) have the roles described in the module
    docstring; any other name is a candidate model. ``tolerances`` overrides keys of :data:`DEFAULT_TOLERANCES`.
    """
    named: dict[str, UnlearningReport] = {}
    for name, rep in (("original", original), ("unlearned", unlearned), ("retrained", retrained)):
        if rep is not None:
            named[name] = rep
    for source in (dict(reports or {}), others):
        for name, rep in source.items():
            if name in named:
                raise ValueError(f"The report name {name!r} is given twice; pass each model once.")
            named[name] = rep
    if not named:
        raise ValueError("compare() needs at least one report, e.g. compare(original=..., unlearned=...).")
    for name, rep in named.items():
        if not isinstance(rep, UnlearningReport):
            raise ValueError(f"{name!r} is a {type(rep).__name__}, not an UnlearningReport (from audit_model).")
    tol = dict(DEFAULT_TOLERANCES)
    unknown = set(tolerances or {}) - set(tol)
    if unknown:
        raise ValueError(f"Unknown tolerance(s) {sorted(unknown)}; valid keys: {sorted(tol)}.")
    tol.update({k: float(v) for k, v in (tolerances or {}).items()})

    ref, base = named.get("retrained"), named.get("original")
    result = Comparison(reports=named, tolerances=tol)
    labels, judged = result.labels(), judged_criteria(named.values())
    targets = {c: _target(c, ref) for c in judged}
    measurable = {c: _separates(c, base, targets[c], tol) for c in judged}
    for name, rep in named.items():
        if rep is ref:
            continue
        if ref is not None:
            result.gaps[name] = {c: _diff(criterion_value(rep, c), criterion_value(ref, c)) for c in labels}
        result.verdicts += _judge(name, rep, rep is base, judged, targets, measurable, ref, base, tol, labels)
    return result


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _target(c: str, ref: UnlearningReport | None) -> tuple[float | None, float, str]:
    """(target value or None for "the model's own test accuracy", its noise, the reference's name)."""
    value = None if ref is None else criterion_value(ref, c)
    if value is not None:
        return value, _noise(ref, c), "retrained"
    if c == "forget_accuracy":
        return None, 0.0, "own test accuracy"
    return 0.5, 0.0, "chance"


def _tolerance(c: str, rep: UnlearningReport, tol: dict[str, float]) -> float:
    if c == "ref_attack_auc":
        return max(tol["ref_attack_auc"], 2 * _noise(rep, c))
    return tol["mia"] if _judged_attack(rep, c) else tol[c]


def _separates(c, base, target, tol) -> tuple[bool | None, str]:
    """Whether the original model is further from the target than tolerance + 2 × noise (None: no original)."""
    value = None if base is None else criterion_value(base, c)
    if value is None:
        return None, ""
    goal = base.test_accuracy if target[0] is None else target[0]
    margin = _tolerance(c, base, tol) + 2 * max(target[1], _noise(base, c))
    return abs(value - goal) > margin + _EPS, f"separation needs |Δ| > {margin:.3f}"


def _judge(name, rep, is_base, judged, targets, measurable, ref, base, tol, labels) -> list[Verdict]:
    out = []
    for c in judged:
        value = criterion_value(rep, c)
        if value is None:
            continue
        attack = _judged_attack(rep, c)
        target, _, reference = targets[c]
        if target is None:
            target = rep.test_accuracy
        t = _tolerance(c, rep, tol)
        sep, why = measurable[c]
        if is_base:
            outcome = "separates" if sep else "not measurable"
            note = why + ("" if sep else ": the original is already within noise of the target")
        elif sep is False:
            outcome, note = "not measurable", "the original (do nothing) is within noise of the target"
        elif attack and _noise(rep, c) > tol["mia"]:
            outcome, note = "inconclusive", f"attack std {_noise(rep, c):.3f} > tol: too few rows to judge"
        else:
            outcome = "pass" if abs(value - target) <= t + _EPS else "fail"
            note = f"attack std {_noise(rep, c):.3f}" if attack else ""
        out.append(Verdict(name, c, outcome, value, target, t, reference, note, labels.get(c, "")))
    anchor, reference = (ref, "retrained") if ref is not None else (base, "original")
    t = tol["test_accuracy_drop"]
    if anchor is None:
        out.append(Verdict(name, "test_accuracy", "n/a", rep.test_accuracy, None, t, "no original or retrained report"))
    elif not is_base:  # the original is the baseline: its test accuracy is shown in the table, not judged
        drop = anchor.test_accuracy - rep.test_accuracy
        outcome = "pass" if drop <= t + _EPS else "fail"
        out.append(Verdict(name, "test_accuracy", outcome, rep.test_accuracy, anchor.test_accuracy, t, reference))
    return out
