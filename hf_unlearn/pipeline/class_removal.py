"""What a job (`hf_unlearn.pipeline.run.run_job`) measures and sets beyond the standard run, by forget selector or
task: the class-removal settings and per-class test accuracies (``forget_classes``), audits during unlearning
(``audit_points``), and the LM attack AUCs and TOFU tables (causal LMs). Only counts and aggregates leave memory:
no class name, id or text of the forget set is printed or saved (the class accuracies are keyed by role).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..audit import AuditCallback, sample_stats, tofu_markdown
from ..trainer.plan import automatic_forget_epochs
from .data import job_class_ids

AUTOMATIC_TAU = "mean validation loss"


def apply_class_removal(job: Any, args: Any, n_forget: int, n_retain: int, num_labels: int) -> str:
    """Class removal's settings (``class_removal_*``; each only where set, and only where the run does not set the
    knob itself): τ = ``class_removal_tau`` × log(num_labels) unless ``tau`` is set; learning rate
    ``class_removal_lr`` unless ``learning_rate`` is set; ``class_removal_length`` × the automatic run length unless
    ``forget_epochs`` or ``max_steps`` is set. Returns where τ comes from (for audit.json)."""
    source = AUTOMATIC_TAU if args.tau is None else "tau (set)"
    if job.class_removal_tau is not None and args.tau is None:
        args.tau = job.class_removal_tau * math.log(num_labels)
        source = f"{job.class_removal_tau:g} × log(num_labels)"
    if job.class_removal_lr is not None and args.learning_rate is None:
        args.learning_rate = job.class_removal_lr
    if job.class_removal_length is not None and args.forget_epochs is None and args.max_steps <= 0:
        batch = args.per_device_train_batch_size * args.world_size
        args.forget_epochs = automatic_forget_epochs(n_forget, n_retain, batch, job.class_removal_length)
        args.num_train_epochs = float(args.forget_epochs)
    return source


def class_accuracy(model: Any, test: Any, classes: list[int], collator: Any) -> dict[str, float]:
    """Test accuracy on the removed classes and on the remaining ones (the utility a class removal must keep:
    overall test accuracy mixes in the removed classes, on which a retrained model scores 0)."""
    inside = np.isin(np.asarray(test["labels"]), classes)
    correct = sample_stats(model, test, data_collator=collator)["correct"]
    return {
        "forget_class_test_accuracy": float(correct[inside].mean()),
        "remaining_classes_test_accuracy": float(correct[~inside].mean()),
    }


class JobExtras:
    """The extras of one run: ``measure`` after each model's audit, ``prepare`` before unlearning, ``attach`` to
    the trainer, then ``tables`` (Markdown) and ``record`` (audit.json keys)."""

    def __init__(self, job: Any, data: Any, task: str) -> None:
        self.job, self.data, self.task = job, data, task
        self.classes = job_class_ids(job.forget_classes, data.names) if job.forget_classes is not None else None
        self.class_accuracy: dict[str, dict[str, float]] = {}
        self.tau_source = AUTOMATIC_TAU
        self.callback: Any = None

    def measure(self, name: str, model: Any) -> None:
        if self.classes is not None:
            self.class_accuracy[name] = class_accuracy(model, self.data.test, self.classes, self.data.collator)

    def prepare(self, args: Any) -> None:
        """Class removal's settings on ``args`` (before the trainer resolves the automatic ones)."""
        if args.tau is not None:
            self.tau_source = "tau (set)"
        if self.classes is not None:
            self.tau_source = apply_class_removal(
                self.job, args, len(self.data.forget), len(self.data.retain), self.data.num_labels
            )

    def attach(self, trainer: Any) -> None:
        """``audit_points`` > 0: audits of forget vs test rows during unlearning (audit_history.png)."""
        if self.job.audit_points <= 0:
            return
        args = trainer.args
        total = args.max_steps if args.max_steps > 0 else args.forget_epochs * trainer.steps_per_forget_epoch
        self.callback = AuditCallback(
            self.data.forget,
            self.data.test,
            data_collator=self.data.collator,
            every_n_steps=max(1, total // self.job.audit_points),
            batch_size=self.job.audit_batch_size,
            seed=args.seed,
        ).attach(trainer)

    def tables(self, reports: dict[str, Any]) -> str:
        """The extra Markdown tables: LM attack AUCs and TOFU metrics (causal LMs), class removal accuracies."""
        names, parts = list(reports), []
        if self.task == "causal_lm":
            lines = [
                "| LM attack AUC (forget vs held-out) | " + " | ".join(names) + " |",
                "|---|" + "---:|" * len(names),
            ]
            for key in ("loss_auc", "min_k_auc", "zlib_auc"):
                cells = [f"{(reports[n].lm_attacks or {}).get(key, float('nan')):.4f}" for n in names]
                lines.append(f"| {key} | " + " | ".join(cells) + " |")
            parts.append("\n".join(lines))
            if any(r.tofu for r in reports.values()):
                parts.append(tofu_markdown({n: r.tofu for n, r in reports.items()}))
        if self.class_accuracy:
            acc, cols = self.class_accuracy, list(self.class_accuracy)
            lines = ["| class removal (test set) | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
            for key in ("forget_class_test_accuracy", "remaining_classes_test_accuracy"):
                lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(f"{acc[n][key]:.4f}" for n in cols) + " |")
            if "retrained" in acc:
                gap = (
                    acc["unlearned"]["remaining_classes_test_accuracy"]
                    - acc["retrained"]["remaining_classes_test_accuracy"]
                )
                lines.append(
                    f"\nRemaining-class accuracy, unlearned − retrained: {100 * gap:+.1f} points (target: within 1)."
                )
            parts.append("\n".join(lines))
        return "".join("\n\n" + p for p in parts)

    def record(self, reports: dict[str, Any], trainer: Any, rows: dict[str, int]) -> dict[str, Any]:
        """audit.json keys: sizes, forget fraction, τ's source, class accuracies, TOFU metrics, audit history."""
        history = self.callback.history if self.callback else None
        if history:
            reports["unlearned"].history = history  # plotted as audit_history.png
        tofu = {n: r.tofu for n, r in reports.items()} if any(r.tofu for r in reports.values()) else None
        return {
            "sizes": rows,
            "forget_fraction": trainer.forget_fraction,
            "tau_source": self.tau_source,
            "class_accuracy": self.class_accuracy or None,
            "tofu": tofu,
            "audit_history": history,
        }
