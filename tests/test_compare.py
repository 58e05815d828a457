"""The comparison loops over the attack registry: a newly registered attack gets its rows without touching
compare.py (the built-in criteria are covered by tests/test_audit.py)."""

import json

import pytest

from hf_unlearn.audit import ATTACKS, Attack, MIAResult, UnlearningReport, compare, register_attack


def _report(forget_acc: float, mia_acc: float, gap: float | None) -> UnlearningReport:
    r = MIAResult(mia_acc, 0.01, mia_acc, 100)
    attacks = None if gap is None else {"loss_gap": {"loss_gap": gap, "std": 0.005}}
    return UnlearningReport("single_label", 100, 100, forget_acc, 0.9, 0.5, 0.6, r, r, attacks=attacks)


@pytest.fixture
def loss_gap():
    def run(f, t, *, seed, task):  # not run here: the reports carry its results
        raise AssertionError

    yield lambda **kw: register_attack(Attack(
        "loss_gap", run, lambda r: [("mean loss gap", None, None, r["loss_gap"], "")],
        lambda r: [("loss_gap", "Mean loss gap (test − forget)", r["loss_gap"])], **kw))
    ATTACKS.pop("loss_gap", None)


def test_a_registered_attack_gets_its_comparison_rows(loss_gap):
    loss_gap()  # default: its card rows, not judged
    reports = {"original": _report(0.99, 0.70, 0.40), "unlearned": _report(0.90, 0.52, 0.05),
               "retrained": _report(0.89, 0.51, 0.02)}
    result = compare(reports)
    assert result.criteria().index("loss_gap") == result.criteria().index("mia_entropy") + 1
    assert "| Mean loss gap (test − forget) | 0.4000 | 0.0500 | 0.0200 |" in result.to_markdown()
    assert result.gaps["unlearned"]["loss_gap"] == pytest.approx(0.03)
    assert not any(v.criterion == "loss_gap" for v in result.verdicts)
    json.dumps(result.to_dict())
    # The built-in verdicts are those of a comparison without the new attack.
    ATTACKS.pop("loss_gap")
    assert compare(reports).to_dict()["verdicts"] == result.to_dict()["verdicts"]


def test_a_judged_attack_gets_verdicts(loss_gap):
    loss_gap(compare=lambda r: [("loss_gap", "Mean loss gap", r["loss_gap"], r["std"])], judged=True)
    result = compare(original=_report(0.99, 0.70, 0.40), unlearned=_report(0.90, 0.52, 0.03),
                     retrained=_report(0.89, 0.51, 0.02), bad=_report(0.60, 0.60, 0.30),
                     missing=_report(0.90, 0.52, None))
    outcomes = {(v.model, v.criterion): v.outcome for v in result.verdicts}
    assert outcomes[("original", "loss_gap")] == "separates"
    assert outcomes[("unlearned", "loss_gap")] == "pass" and outcomes[("bad", "loss_gap")] == "fail"
    assert ("missing", "loss_gap") not in outcomes and outcomes[("missing", "mia_loss")] == "pass"
    line = next(v.line() for v in result.verdicts if v.model == "unlearned" and v.criterion == "loss_gap")
    assert line.startswith("unlearned: Mean loss gap 0.0300 vs retrained 0.0200") and "tol ±0.030" in line
    assert [v.criterion for v in result.verdicts if v.model == "bad"] == [
        "mia_loss", "mia_entropy", "loss_gap", "forget_accuracy", "test_accuracy"]
    assert "label" not in result.to_dict()["verdicts"][0]
