"""Put several audit reports side by side and judge each model against the retrained one (the gold standard).

Verdicts, per model other than ``retrained`` (tolerances in :data:`DEFAULT_TOLERANCES`, overridable):

- ``mia_loss`` / ``mia_entropy``: ``|MIA accuracy − retrained's| ≤ tol["mia"]``; without a retrained model the
  target is 0.5 (chance).
- ``forget_accuracy``: ``|forget accuracy − retrained's| ≤ tol["forget_accuracy"]``; without a retrained model
  the target is the model's own test accuracy (what a model that never saw the forget set would score, when
  forget and test come from the same distribution).
- ``test_accuracy``: ``original's test accuracy − this model's ≤ tol["test_accuracy_drop"]`` (vs the retrained
  model when there is no original; otherwise not judged).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .report import UnlearningReport

DEFAULT_TOLERANCES: dict[str, float] = {"mia": 0.03, "forget_accuracy": 0.03, "test_accuracy_drop": 0.015}
_EPS = 1e-9  # so that a gap equal to the tolerance passes despite float rounding

CRITERIA: dict[str, str] = {
    "forget_accuracy": "forget accuracy",
    "retain_accuracy": "retain accuracy",
    "test_accuracy": "test accuracy",
    "forget_loss": "forget loss",
    "test_loss": "test loss",
    "mia_loss": "MIA accuracy (loss)",
    "mia_entropy": "MIA accuracy (entropy)",
}


def criterion_value(report: UnlearningReport, criterion: str) -> float | None:
    """The number a criterion reads from a report (MIA criteria read the attack accuracy)."""
    if criterion in ("mia_loss", "mia_entropy"):
        return getattr(report, criterion).accuracy
    return getattr(report, criterion)


@dataclass
class Verdict:
    """One model judged on one criterion; ``passed`` is ``None`` when it cannot be judged."""

    model: str
    criterion: str
    passed: bool | None
    value: float | None
    target: float | None
    tolerance: float
    reference: str
    note: str = ""

    @property
    def delta(self) -> float | None:
        return None if self.value is None or self.target is None else self.value - self.target

    def line(self) -> str:
        name = CRITERIA[self.criterion]
        if self.passed is None:
            return f"{self.model}: {name}: n/a ({self.reference})"
        status = "PASS" if self.passed else "FAIL"
        if self.criterion == "test_accuracy":
            drop = self.target - self.value  # type: ignore[operator]
            return (
                f"{self.model}: {name} {self.value:.4f} vs {self.reference} {self.target:.4f} "
                f"(drop {drop:+.4f}, tol {self.tolerance:.3f}) → {status}"
            )
        note = f"; {self.note}" if self.note else ""
        return (
            f"{self.model}: {name} {self.value:.4f} vs {self.reference} {self.target:.4f} "
            f"(Δ {self.delta:+.4f}, tol ±{self.tolerance:.3f}{note}) → {status}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "line": self.line()}


@dataclass
class Comparison:
    """Reports side by side, each model's gap to the retrained model, and verdict lines."""

    reports: dict[str, UnlearningReport]
    tolerances: dict[str, float]
    gaps: dict[str, dict[str, float | None]] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    def criteria(self) -> list[str]:
        """Criteria that at least one report has a value for."""
        return [c for c in CRITERIA if any(criterion_value(r, c) is not None for r in self.reports.values())]

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
        lines = ["**Unlearning comparison**", "", head, sep]
        for c in self.criteria():
            cells = [_fmt(criterion_value(self.reports[n], c)) for n in names]
            lines.append(f"| {CRITERIA[c]} | " + " | ".join(cells) + " |")
        if self.gaps:
            gap_names = list(self.gaps)
            lines += ["", "Gap to the retrained model (model − retrained):", ""]
            lines += ["| criterion | " + " | ".join(gap_names) + " |", "|---|" + "---:|" * len(gap_names)]
            for c in self.criteria():
                cells = [_fmt(self.gaps[n].get(c), signed=True) for n in gap_names]
                lines.append(f"| {CRITERIA[c]} | " + " | ".join(cells) + " |")
        if self.verdicts:
            lines += ["", "Verdicts:", ""] + [f"- {v.line()}" for v in self.verdicts]
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

    ref = named.get("retrained")
    base = named.get("original")
    result = Comparison(reports=named, tolerances=tol)
    for name, rep in named.items():
        if rep is ref:
            continue
        if ref is not None:
            result.gaps[name] = {c: _diff(criterion_value(rep, c), criterion_value(ref, c)) for c in CRITERIA}
        result.verdicts += _judge(name, rep, ref, base, tol)
    return result


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _judge(
    name: str, rep: UnlearningReport, ref: UnlearningReport | None, base: UnlearningReport | None, tol: dict[str, float]
) -> list[Verdict]:
    out = []
    for c in ("mia_loss", "mia_entropy"):
        target, reference = (criterion_value(ref, c), "retrained") if ref else (0.5, "chance")
        value = criterion_value(rep, c)
        std = getattr(rep, c).accuracy_std
        note = f"attack std {std:.3f}" + (" > tol: few samples, inconclusive" if std > tol["mia"] else "")
        passed = abs(value - target) <= tol["mia"] + _EPS
        out.append(Verdict(name, c, passed, value, target, tol["mia"], reference, note))
    target, reference = (ref.forget_accuracy, "retrained") if ref else (rep.test_accuracy, "own test accuracy")
    t = tol["forget_accuracy"]
    out.append(
        Verdict(
            name,
            "forget_accuracy",
            abs(rep.forget_accuracy - target) <= t + _EPS,
            rep.forget_accuracy,
            target,
            t,
            reference,
        )
    )
    t = tol["test_accuracy_drop"]
    anchor, reference = (base, "original") if base is not None else (ref, "retrained")
    if anchor is None:
        out.append(Verdict(name, "test_accuracy", None, rep.test_accuracy, None, t, "no original or retrained report"))
    else:
        drop = anchor.test_accuracy - rep.test_accuracy
        out.append(
            Verdict(name, "test_accuracy", drop <= t + _EPS, rep.test_accuracy, anchor.test_accuracy, t, reference)
        )
    return out
