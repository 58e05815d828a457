"""The bottom line of a comparison, for the model card: was forgetting shown, against what, at what cost?

`bottom_line(comparison)` reads the verdicts of `hf_unlearn.audit.compare` for the unlearned model (the first
model that is neither ``original`` nor ``retrained``) and says, in one headline:

- **forgetting shown**: every forgetting criterion that measures anything here (forget accuracy, the judged
  membership attacks, RMIA) passes against the reference;
- **forgetting not shown**: at least one of them fails (including by overshooting: over-unlearning);
- **forgetting not measurable**: none of them can tell forgetting from doing nothing here (the original is within
  noise of the target on each, or the attacks are too noisy): the audit proves nothing either way.

The reference is the retrained model (gold standard) when the comparison has one, else chance (0.5) for the
attacks and the model's own test accuracy for forget accuracy; the original ("do nothing") is always the baseline.
**Over-unlearning** (a forget-set figure that overshoots the target: forget accuracy below the reference's, a
membership attack well below it) is flagged: it is detectable, as memorisation is. Aggregates only: nothing here
reads forget-set rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .compare import REF_CRITERIA, SPLIT_CRITERIA, _noise, criterion_value

#: the figures the card's YAML header shows for every model (criterion: key)
HEADLINE_FIGURES = {"forget_accuracy": "forget_accuracy", "test_accuracy": "test_accuracy",
                    "retain_accuracy": "retain_accuracy", "mia_loss": "mia_loss_accuracy",
                    "ref_attack_auc": "rmia_auc"}
SHOWN, NOT_SHOWN, NOT_MEASURABLE = "forgetting shown", "forgetting not shown", "forgetting not measurable"


@dataclass
class BottomLine:
    """The headline verdict of one unlearned model and the facts behind it."""

    model: str
    verdict: str
    reference: str
    measured: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    overshoot: list[str] = field(default_factory=list)
    utility: str = ""
    figures: dict[str, dict[str, float]] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The card's YAML ``unlearning:`` block: verdict, reference, over-unlearning, each model's figures."""
        reference = "retrained" if "retrained" in self.figures else "chance and own test accuracy"
        return {"verdict": self.verdict, "reference": reference, "baseline": "original",
                "over_unlearning": bool(self.overshoot), "figures": self.figures}

    def markdown(self) -> str:
        lines = [f"**{self.verdict.capitalize()}** against {self.reference}; the original model (\"do nothing\") "
                 "is the baseline."]
        if self.verdict == NOT_MEASURABLE:
            lines.append("On no forgetting criterion does the original itself differ from the target by more than "
                         "the tolerance plus its noise, so these figures cannot tell forgetting from doing nothing: "
                         "this audit is no evidence that anything was forgotten (nor that it was not).")
        else:
            lines.append(f"Criteria that measure something here: {', '.join(self.measured)}."
                         + (f" Failed: {', '.join(self.failed)}." if self.failed else " All pass."))
        if self.overshoot:
            lines.append(f"**Over-unlearning**: {'; '.join(self.overshoot)}. A forget set that looks *less* familiar "
                         "than unseen data is as detectable by a membership attack as memorisation.")
        if self.utility:
            lines.append(self.utility)
        lines.append("A single figure is not a verdict: an MIA accuracy near 0.5 shows forgetting only when the "
                     "original was measurably above it (see the verdict lines below).")
        return "\n\n".join(lines)


def bottom_line(comparison: Any, model: str | None = None) -> BottomLine | None:
    """The bottom line of ``model`` (default: the first model that is not ``original`` or ``retrained``) in a
    `Comparison`; None when it has no such model."""
    names = [n for n in comparison.reports if n not in ("original", "retrained")]
    model = model or (names[0] if names else None)
    if model is None:
        return None
    retrained = "retrained" in comparison.reports
    reference = ("the retrained model (gold standard: retrained from scratch without the forget set)" if retrained
                 else "chance (0.5) for the membership attacks and its own test accuracy for forget accuracy "
                 "(no retrained model was audited)")
    mine = [v for v in comparison.verdicts if v.model == model]
    forgetting = [v for v in mine if v.criterion != "test_accuracy"]
    measured = [v for v in forgetting if v.outcome in ("pass", "fail")]
    failed = [v for v in measured if v.outcome == "fail"]
    # overshoot: the forget set looks less familiar than the target, beyond tolerance + twice the measurement's noise
    report, overshoot = comparison.reports[model], []
    for v in forgetting:
        if v.value is None or v.target is None:
            continue
        margin = v.tolerance + 2 * _noise(report, v.criterion)
        if v.value < v.target - margin - 1e-9:
            overshoot.append(f"{_label(v)} {v.value:.3f} is below its target ({v.reference}) {v.target:.3f} by more "
                             f"than the tolerance plus twice its noise ({margin:.3f})")
    verdict = NOT_MEASURABLE if not measured else NOT_SHOWN if failed else SHOWN
    utility = ""
    for v in mine:
        if v.criterion == "test_accuracy" and v.target is not None:
            change = v.value - v.target
            utility = (f"Utility: test accuracy {v.value:.4f} vs {v.reference} {v.target:.4f} ({change:+.4f}; "
                       f"allowed drop {v.tolerance:.3f}) → {v.outcome}.")
    figures = {name: {key: round(float(value), 4) for crit, key in HEADLINE_FIGURES.items()
                      if (value := criterion_value(report, crit)) is not None}
               for name, report in comparison.reports.items()}
    return BottomLine(model, verdict, reference, [_label(v) for v in measured], [_label(v) for v in failed],
                      overshoot, utility, figures)


def _label(verdict: Any) -> str:
    return verdict.label or {**SPLIT_CRITERIA, **REF_CRITERIA}.get(verdict.criterion, verdict.criterion)
