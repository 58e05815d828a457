"""``audit_model`` and the ``UnlearningReport`` it returns: sizes, aggregates and attack results only.

Privacy: a report never holds text, ids or labels. It keeps the per-sample loss arrays of the forget and test sets
in memory (for plots); they are written out only with ``include_losses=True``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import write_json_atomic
from ._batching import Collator, dataset_len, subsample_indices
from .attacks import MIN_SAMPLES_PER_CLASS, MIAResult, ReferenceAttackResult, ThresholdResult
from .plots import plot_history, plot_loss_histograms
from .registry import ATTACKS
from .stats import sample_stats_with_task

FORMAT = "hf-unlearn-audit/1"


@dataclass
class UnlearningReport:
    """What :func:`audit_model` measured. Accuracies are means of the per-sample ``correct`` statistic."""

    task: str
    n_forget: int
    n_test: int
    forget_accuracy: float
    test_accuracy: float
    forget_loss: float
    test_loss: float
    mia_loss: MIAResult
    mia_entropy: MIAResult
    n_retain: int | None = None
    retain_accuracy: float | None = None
    retain_loss: float | None = None
    mia_threshold: ThresholdResult | None = None
    lm_attacks: dict[str, float] | None = None
    ref_attack: ReferenceAttackResult | None = None
    tofu: dict[str, float] | None = None
    attacks: dict[str, Any] | None = None  # results of registered attacks other than the built-in fields
    seed: int = 0
    max_samples: int | None = None
    history: list[dict[str, float]] | None = None
    forget_losses: np.ndarray | None = field(default=None, repr=False, compare=False)
    test_losses: np.ndarray | None = field(default=None, repr=False, compare=False)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self, include_losses: bool = False) -> dict[str, Any]:
        """JSON-ready dict; per-sample losses only with ``include_losses=True``."""
        out: dict[str, Any] = {"format": FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("forget_losses", "test_losses"):
                if include_losses and value is not None:
                    out[f.name] = [float(v) for v in value]
                continue
            if f.name == "attacks" and not value:
                continue  # only registered attacks beyond the built-in ones
            if isinstance(value, (MIAResult, ThresholdResult, ReferenceAttackResult)):
                value = value.to_dict()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnlearningReport:
        """Inverse of :meth:`to_dict`."""
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"Unsupported audit report format {fmt!r}; this version reads {FORMAT!r}.")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("mia_loss", "mia_entropy"):
            kwargs[key] = MIAResult.from_dict(kwargs[key])
        if kwargs.get("mia_threshold") is not None:
            kwargs["mia_threshold"] = ThresholdResult.from_dict(kwargs["mia_threshold"])
        if kwargs.get("ref_attack") is not None:
            kwargs["ref_attack"] = ReferenceAttackResult.from_dict(kwargs["ref_attack"])
        for key in ("forget_losses", "test_losses"):
            if kwargs.get(key) is not None:
                kwargs[key] = np.asarray(kwargs[key], dtype=np.float64)
        return cls(**kwargs)

    def to_json(self, path: str | Path, include_losses: bool = False) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (parent folders are created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.to_dict(include_losses))
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> UnlearningReport:
        """Read a report written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No audit report at {path}; write one with `report.to_json(path)`.")
        return cls.from_dict(json.loads(path.read_text()))

    def attack_result(self, name: str) -> Any:
        """The result of the registered attack ``name`` (a built-in field, else ``attacks[name]``; None if absent)."""
        if name in {f.name for f in fields(self)}:
            return getattr(self, name)
        return (self.attacks or {}).get(name)

    # ----------------------------------------------------------------- presentation
    def to_markdown(self) -> str:
        """Two Markdown tables: per-split size/accuracy/loss, then the attacks (0.5 = chance)."""
        lines = [
            f"**Unlearning audit** (task: {self.task}, seed {self.seed})",
            "",
            "| split | n | accuracy | mean loss |",
            "|---|---:|---:|---:|",
            f"| forget | {self.n_forget} | {_f(self.forget_accuracy)} | {_f(self.forget_loss)} |",
        ]
        if self.n_retain is not None:
            lines.append(f"| retain | {self.n_retain} | {_f(self.retain_accuracy)} | {_f(self.retain_loss)} |")
        lines += [
            f"| test | {self.n_test} | {_f(self.test_accuracy)} | {_f(self.test_loss)} |",
            "",
            "| attack (forget vs test) | accuracy | ± std | AUC | n per class |",
            "|---|---:|---:|---:|---:|",
        ]
        notes = []
        for attack in ATTACKS.values():
            result = self.attack_result(attack.name)
            for label, acc, std, auc, n in attack.table(result) if result is not None else []:
                lines.append(f"| {label} | {_f(acc)} | {_f(std)} | {_f(auc)} | {n} |")
            if result is not None and attack.note is not None:
                notes += attack.note(result)
        lines += notes
        lines += ["", "MIA accuracy 0.5 = forget set indistinguishable from unseen data; AUC > 0.5 = still memorised."]
        return "\n".join(lines) + "\n"

    def plot(
        self,
        path_or_dir: str | Path,
        before: UnlearningReport | None = None,
        history: Any | None = None,
    ) -> list[Path]:
        """Write PNGs into the folder ``path_or_dir`` (a ``.png`` path names the histogram file instead).

        ``loss_histograms.png``: forget-vs-test loss distributions, side by side with ``before`` (the original
        model's report) when given. ``audit_history.png``: MIA and accuracies over training steps, from
        ``history`` (an :class:`AuditCallback`, its ``history`` list, or ``trainer.state.log_history``) or
        ``self.history``. Returns the written paths.
        """
        path = Path(path_or_dir)
        if path.suffix.lower() == ".png":
            hist_path, history_path = path, path.with_name(f"{path.stem}_history.png")
        else:
            hist_path, history_path = path / "loss_histograms.png", path / "audit_history.png"
        hist_path.parent.mkdir(parents=True, exist_ok=True)
        written = [plot_loss_histograms(self, hist_path, before=before)]
        hist = history if history is not None else self.history
        if hist is not None:
            written.append(plot_history(hist, history_path))
        return written


def write_audit_json(path: str | Path, content: dict[str, Any]) -> Path:
    """The one writer of ``audit.json`` (the trainer's audit, `hf-unlearn run` and `hf-unlearn audit`): ``content``
    in its order, each report or comparison (anything with ``to_dict``) as its dict; atomic, parent folders
    created. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {k: v.to_dict() if hasattr(v, "to_dict") else v for k, v in content.items()})
    return path


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _mean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _finite_rows(stats: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    keep = np.isfinite(stats["loss"])
    if keep.all():
        return stats
    warnings.warn(
        f"{int((~keep).sum())} {name} sample(s) have no supervised token and are left out of the audit.",
        stacklevel=3,
    )
    return {k: v[keep] for k, v in stats.items()}


def _check_audit_inputs(forget: Any, test: Any, max_samples: int | None, references: Any, population: Any) -> None:
    """``ValueError`` before any forward pass: references without a population, or too few forget/test rows."""
    if references and population is None:
        raise ValueError("`references` need a `population` set (held-out rows, e.g. the τ rows) for RMIA.")
    sizes = {"forget": dataset_len(forget, "forget"), "test": dataset_len(test, "test")}
    for name, n in sizes.items():
        usable = n if max_samples is None else min(n, max_samples)
        if usable < MIN_SAMPLES_PER_CLASS:
            raise ValueError(
                f"The {name} set has {usable} usable rows; the audit's attacks need at least "
                f"{MIN_SAMPLES_PER_CLASS}. Pass a larger {name} set (or raise max_samples)."
            )


def _split_fields(f_stats: dict[str, np.ndarray], t_stats: dict[str, np.ndarray],
                  r_stats: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """The report's sizes, accuracies and mean losses of the forget, test and (when audited) retain rows."""
    return dict(
        n_forget=len(f_stats["loss"]),
        n_test=len(t_stats["loss"]),
        forget_accuracy=_mean(f_stats["correct"]),
        test_accuracy=_mean(t_stats["correct"]),
        forget_loss=_mean(f_stats["loss"]),
        test_loss=_mean(t_stats["loss"]),
        n_retain=None if r_stats is None else len(r_stats["loss"]),
        retain_accuracy=None if r_stats is None else _mean(r_stats["correct"]),
        retain_loss=None if r_stats is None else _mean(r_stats["loss"]),
    )


def audit_model(
    model: torch.nn.Module, *, forget: Any, test: Any, retain: Any | None = None,
    data_collator: Collator | None = None, batch_size: int = 64, task: str | None = None, loss_fn: Any | None = None,
    seed: int = 0, max_samples: int | None = None, device: str | torch.device | None = None,
    tokenizer: Any | None = None, population: Any | None = None, references: list[Any] | None = None,
    offline_a: float = 0.3, tofu: Any | None = None,
) -> UnlearningReport:
    """Measure how well ``model`` has forgotten ``forget``, compared with the unseen ``test`` set.

    Each split is capped at ``max_samples`` rows by seeded sampling. Computes per-split accuracy and mean loss,
    the loss- and entropy-based population MIAs and a loss threshold attack (forget = members, test =
    non-members; see :mod:`hf_unlearn.audit.attacks` for conventions), and for causal LMs the loss / Min-K% /
    zlib AUCs. ``tokenizer`` (optional) is used for padding ids and the zlib statistic only.
    With ``references`` (models that never saw the forget rows, e.g. retrained ones; or their
    :func:`reference_losses`) and ``population`` (held-out rows that are neither forget nor test rows, e.g. the τ
    rows), the per-example reference attack :func:`~hf_unlearn.audit.attacks.rmia` is added as ``ref_attack``.
    ``tofu`` (a :class:`~hf_unlearn.audit.tofu.TofuData` of raw QA rows, causal LMs, needs ``tokenizer``) adds
    TOFU's forget quality, truth ratio, answer probability, ROUGE-L and model utility.
    Raises ``ValueError`` before any forward pass when forget or test has fewer than 10 rows.
    """
    _check_audit_inputs(forget, test, max_samples, references, population)
    common = dict(
        data_collator=data_collator, batch_size=batch_size, loss_fn=loss_fn, device=device, tokenizer=tokenizer
    )

    def run(ds: Any, offset: int, current_task: str | None) -> tuple[dict[str, np.ndarray], str]:
        return _stats(model, ds, offset, current_task, seed=seed, max_samples=max_samples, **common)

    f_stats, task = run(forget, 0, task)
    t_stats, _ = run(test, 1, task)
    f_stats, t_stats = _finite_rows(f_stats, "forget"), _finite_rows(t_stats, "test")
    r_stats = _finite_rows(run(retain, 2, task)[0], "retain") if retain is not None else None

    def losses(other: torch.nn.Module | None = None) -> dict[str, np.ndarray]:
        """Per-sample losses on the audited forget, test and population rows: of the audited model (None) or
        ``other`` (e.g. a reference model)."""
        if other is None:
            population_stats = _finite_rows(run(population, _OFFSETS["population"], task)[0], "population")
            return {"forget": f_stats["loss"], "test": t_stats["loss"], "population": population_stats["loss"]}
        return reference_losses(other, forget=forget, test=test, population=population, task=task, seed=seed,
                                max_samples=max_samples, **common)

    inputs = dict(model=model, tokenizer=tokenizer, references=references, population=population, tofu=tofu,
                  offline_a=offline_a, losses=losses)
    given = {k for k, v in inputs.items() if v is not None and not (isinstance(v, (list, tuple)) and not v)}
    results = {name: attack.run(f_stats, t_stats, seed=seed, task=task, **(inputs if attack.needs else {}))
               for name, attack in ATTACKS.items() if given.issuperset(attack.needs)}
    builtin = {name: results.pop(name) for name in list(results) if name in {f.name for f in fields(UnlearningReport)}}
    return UnlearningReport(
        task=task,
        **_split_fields(f_stats, t_stats, r_stats),
        **builtin,
        attacks={k: v for k, v in results.items() if v is not None} or None,
        seed=seed,
        max_samples=max_samples,
        forget_losses=f_stats["loss"],
        test_losses=t_stats["loss"],
    )


_OFFSETS = {"forget": 0, "test": 1, "retain": 2, "population": 3}


def _stats(model, ds, offset: int, task: str | None, *, seed: int, max_samples: int | None, **common):
    idx = subsample_indices(dataset_len(ds), max_samples, seed + offset)
    return sample_stats_with_task(model, ds, task=task, indices=idx, **common)


def reference_losses(
    model: torch.nn.Module,
    *,
    forget: Any,
    test: Any,
    population: Any,
    seed: int = 0,
    max_samples: int | None = None,
    **kwargs: Any,
) -> dict[str, np.ndarray]:
    """A reference model's per-sample losses on the rows :func:`audit_model` scores (same sampling, same order).

    Pass the result in ``audit_model(..., references=[...])`` to score several models against one reference
    without running it again. Other keyword arguments: ``data_collator``, ``batch_size``, ``task``, ``loss_fn``,
    ``device``, ``tokenizer``.
    """
    task = kwargs.pop("task", None)
    out = {}
    for name, ds in (("forget", forget), ("test", test), ("population", population)):
        stats, task = _stats(model, ds, _OFFSETS[name], task, seed=seed, max_samples=max_samples, **kwargs)
        out[name] = _finite_rows(stats, name)["loss"]
    return out
