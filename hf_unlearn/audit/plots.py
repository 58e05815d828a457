"""PNG figures of an audit, drawn with matplotlib's object API on the Agg canvas (no pyplot global state).

Only aggregates and per-sample loss values are drawn; no text, id or label of any sample. The reports drawn are
`audit.report.UnlearningReport`s, typed `Any` here: the report imports this module, never the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

HISTORY_KEYS = ("mia_loss", "test_accuracy", "forget_accuracy")


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # atomic, as every record (`hf_unlearn.io`)
    fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    os.replace(tmp, path)
    return path


def _losses(report: Any, which: str) -> tuple[np.ndarray, np.ndarray]:
    if report.forget_losses is None or report.test_losses is None:
        raise ValueError(
            f"The {which} report holds no per-sample losses (reports read from JSON keep them only when written "
            "with `to_json(path, include_losses=True)`); re-run `audit_model` to plot loss histograms."
        )
    return np.asarray(report.forget_losses, dtype=float), np.asarray(report.test_losses, dtype=float)


def _bins(arrays: Iterable[np.ndarray], n: int = 40) -> tuple[np.ndarray, bool]:
    """Shared bin edges; logarithmic when all losses are positive and span more than two decades."""
    values = np.concatenate([a[np.isfinite(a)] for a in arrays])
    lo, hi = float(values.min()), float(values.max())
    if lo > 0 and hi / lo > 100:
        return np.geomspace(lo, hi, n + 1), True
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, n + 1), False


def plot_loss_histograms(after: Any, path: str | Path, before: Any = None) -> Path:
    """Forget-vs-test loss histograms of ``after``; with ``before``, two panels (before | after unlearning)."""
    panels = [("after unlearning" if before is not None else "forget vs test", after)]
    if before is not None:
        panels.insert(0, ("before unlearning", before))
    data = [(title, rep, *_losses(rep, title)) for title, rep in panels]
    bins, log = _bins([a for *_, f, t in data for a in (f, t)])
    fig = Figure(figsize=(5.5 * len(data), 4))
    axes = fig.subplots(1, len(data), sharex=True, sharey=False, squeeze=False)[0]
    for ax, (title, rep, forget, test) in zip(axes, data):
        ax.hist(test, bins=bins, alpha=0.55, density=True, label=f"test (n={len(test)})", color="tab:blue")
        ax.hist(forget, bins=bins, alpha=0.55, density=True, label=f"forget (n={len(forget)})", color="tab:red")
        if log:
            ax.set_xscale("log")
        ax.set_title(f"{title}\nMIA acc {rep.mia_loss.accuracy:.3f}, AUC {rep.mia_loss.auc:.3f}")
        ax.set_xlabel("per-sample loss")
        ax.set_ylabel("density")
        ax.legend()
    return _save(fig, Path(path))


def history_rows(history: Any) -> list[dict[str, float]]:
    """Normalise a history: an object with ``.history``, or a list of dicts (``audit/`` prefixes are stripped).

    Entries without an MIA value (e.g. plain training logs from ``trainer.state.log_history``) are skipped.
    """
    rows = getattr(history, "history", history)
    if not isinstance(rows, Iterable) or isinstance(rows, (str, bytes, Mapping)):
        raise ValueError("`history` must be an AuditCallback, its `history` list, or trainer.state.log_history.")
    out = []
    for entry in rows:
        clean = {str(k).removeprefix("audit/"): v for k, v in dict(entry).items()}
        if "mia_loss" in clean and "step" in clean:
            out.append({k: float(v) for k, v in clean.items() if isinstance(v, (int, float))})
    return out


def plot_history(history: Any, path: str | Path) -> Path:
    """MIA accuracy (loss) and accuracies against the optimizer step, with the 0.5 chance line."""
    rows = history_rows(history)
    if not rows:
        raise ValueError("The history holds no audit entries (keys `mia_loss`/`audit/mia_loss` with a `step`).")
    rows.sort(key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    labels = {"mia_loss": "MIA accuracy (loss)", "test_accuracy": "test accuracy", "forget_accuracy": "forget accuracy"}
    for key in HISTORY_KEYS:
        if any(key in r for r in rows):
            ax.plot(steps, [r.get(key, np.nan) for r in rows], marker="o", label=labels[key])
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (MIA)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("value")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title("Audit during unlearning")
    return _save(fig, Path(path))
