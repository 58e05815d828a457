"""The registry of audit attacks and metrics (`ATTACKS`): what `audit_model` runs, and what the report's table, the
model card and `compare` list, each by looping over it. The population attacks, RMIA (reference models) and the TOFU
metrics (generation) are entries; a new one is one `register_attack` call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .attacks import lm_attacks, mia, rmia, threshold_attack
from .tofu import tofu_markdown, tofu_metrics


@dataclass(frozen=True)
class Attack:
    """An attack or metric (forget rows = members, test rows = non-members) that `audit_model` runs and the report's
    table, the model card and `compare` list, each by looping over `ATTACKS`:

    * ``run(forget_stats, test_stats, *, seed, task)``: the result (``None``: the attack does not apply to the task);
      the per-sample statistics hold ``loss``, ``entropy``, ``correct`` (and the LM statistics for causal LMs);
    * ``needs``: the further inputs of `audit_model` it needs (``"references"``, ``"population"``, ``"tofu"``,
      ``"tokenizer"``); an entry with needs runs only when each is given, and its ``run`` also receives, as keyword
      arguments, ``model``, ``tokenizer``, ``references``, ``population``, ``tofu``, ``offline_a`` and
      ``losses(other=None)`` (per-sample losses on the audit's ``"forget"``, ``"test"`` and ``"population"`` rows,
      of the audited model or of ``other``) — so a metric that needs reference models or generation is one entry
      too (RMIA and the TOFU metrics below);
    * ``table(result)``: Markdown rows ``(label, accuracy, accuracy std, AUC, n per class)`` (``None`` shows "–");
    * ``card(result)``: model-index rows ``(metric type, metric name, value)`` on the forget-vs-test split, or
      ``(split, metric type, metric name, value)``;
    * ``note(result)``: Markdown lines the report prints after its attack table (``None``: none);
    * ``compare(result)``: rows ``(criterion, label, value, noise std)`` of `hf_unlearn.audit.compare`'s table and
      gaps (``None``, the default: the ``card`` rows, noise 0); with ``judged=True`` each criterion also gets a
      verdict like the MIA accuracies' (target: the retrained model's value, else 0.5; tolerance ``tol["mia"]``;
      "inconclusive" when the noise exceeds it).

    The built-in attacks fill the `UnlearningReport` field of their name; another registered attack lands in
    ``report.attacks[name]`` (its result a JSON-able dict). A new attack is one `register_attack` call.
    """

    name: str
    run: Any
    table: Any
    card: Any
    compare: Any = None
    judged: bool = False
    needs: tuple[str, ...] = ()
    note: Any = None

    def compared(self, result: Any) -> list[tuple[str, str, float | None, float]]:
        """The comparison rows ``(criterion, label, value, noise std)`` of ``result`` (see the class docstring)."""
        if self.compare is not None:
            return list(self.compare(result))
        return [(*row[-3:], 0.0) for row in self.card(result)]  # (key, label, value), with or without a split


ATTACKS: dict[str, Attack] = {}


def register_attack(attack: Attack) -> Attack:
    """Add ``attack`` to `ATTACKS` (replacing one of the same name); returns it."""
    ATTACKS[attack.name] = attack
    return attack


def _mia_row(label: str):
    return lambda r: [(label, r.accuracy, r.accuracy_std, r.auc, r.n_per_class)]


_LM_ATTACKS = (("loss_auc", "LM loss", "LM loss attack AUC"), ("min_k_auc", "Min-K% (20%)", "Min-K% attack AUC"),
               ("zlib_auc", "zlib ratio", "zlib attack AUC"))


def _mia_criterion(key: str, label: str):
    return lambda r: [(key, label, r.accuracy, r.accuracy_std)]


def _not_compared(result: Any) -> list:
    return []  # listed by the report table and the card; the comparison judges the MIA accuracies instead


register_attack(Attack(
    "mia_loss", lambda f, t, *, seed, task: mia(f["loss"], t["loss"], seed=seed), _mia_row("MIA, loss"),
    lambda r: [("mia_accuracy", "MIA accuracy (loss)", r.accuracy), ("mia_auc", "MIA AUC (loss)", r.auc)],
    _mia_criterion("mia_loss", "MIA accuracy (loss)"), judged=True))
register_attack(Attack(
    "mia_entropy", lambda f, t, *, seed, task: mia(f["entropy"], t["entropy"], seed=seed), _mia_row("MIA, entropy"),
    lambda r: [("mia_entropy_accuracy", "MIA accuracy (entropy)", r.accuracy)],
    _mia_criterion("mia_entropy", "MIA accuracy (entropy)"), judged=True))
register_attack(Attack(
    "mia_threshold", lambda f, t, *, seed, task: threshold_attack(f["loss"], t["loss"], seed=seed),
    lambda r: [("threshold, loss", r.accuracy, r.accuracy_std, None, r.n_per_class)],
    lambda r: [("threshold_attack_accuracy", "Loss-threshold attack accuracy", r.accuracy)], _not_compared))
register_attack(Attack(
    "lm_attacks", lambda f, t, *, seed, task: lm_attacks(f, t, seed=seed) if task == "causal_lm" else None,
    lambda r: [(label, None, None, r[key], r.get("n_per_class", "")) for key, label, _ in _LM_ATTACKS if key in r],
    lambda r: [(key, name, r.get(key)) for key, _, name in _LM_ATTACKS], _not_compared))


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _run_rmia(f, t, *, references, losses, offline_a, **_):
    """RMIA: the audited model's and each reference's losses on every split (a reference given as a dict of
    precomputed losses is used as it is)."""
    target = losses()
    return rmia(target, [r if isinstance(r, dict) else losses(r) for r in references], offline_a=offline_a)


register_attack(Attack(
    "ref_attack", _run_rmia,
    lambda r: [(f"RMIA ({r.n_reference_models} reference model(s))", None, None, r.auc,
                min(r.n_members, r.n_nonmembers))],
    lambda r: [], _not_compared, needs=("references", "population"),
    note=lambda r: ["", f"RMIA: AUC {_f(r.auc)} (chance 0.5, null std {_f(r.null_auc_std)}), TPR at 1 % FPR "
                    f"{_f(r.tpr_at_1pct_fpr)}, at 0.1 % FPR {_f(r.tpr_at_0_1pct_fpr)} ({r.n_members} forget vs "
                    f"{r.n_nonmembers} test rows)."]))
register_attack(Attack(
    "tofu", lambda f, t, *, model, tokenizer, tofu, **_: tofu_metrics(model, tokenizer, tofu),
    lambda r: [],
    lambda r: [(split, key, name, r.get(key)) for split, key, name in (
        ("forget", "forget_quality", "TOFU forget quality (KS p-value vs retrained)"),
        ("forget", "forget_truth_ratio", "TOFU truth ratio"), ("forget", "forget_rouge_l", "TOFU ROUGE-L recall"),
        ("retain", "retain_rouge_l", "TOFU ROUGE-L recall"), ("retain", "model_utility", "TOFU model utility"))],
    _not_compared, needs=("tofu",),
    note=lambda r: ["", tofu_markdown({"value": r}).rstrip()] if r else []))
