"""``AuditCallback``: a cheap loss-MIA and accuracy check every N optimizer steps, logged with the Trainer's logs.

How the numbers reach the logs: at an audit step the callback measures in ``on_step_end``, sets
``control.should_log`` so the Trainer logs at that step, and in ``on_log`` adds its ``audit/...`` keys to the
``logs`` dict and to the matching ``state.log_history`` entry. Callbacks that run *after* it (the progress bar /
printer) see the keys; reporting integrations (TensorBoard, W&B, …) run before user callbacks, so to forward the
keys to them too, add the callback with :meth:`AuditCallback.attach` (which puts it first in the list).

Only aggregates are logged (MIA accuracy/AUC, accuracies, seconds): nothing of the forget set.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ._batching import Collator, dataset_len, subsample_indices
from .attacks import MIN_SAMPLES_PER_CLASS, mia
from .stats import sample_stats


class AuditCallback(TrainerCallback):
    """Every ``every_n_steps`` optimizer steps, audit a fixed seeded sample of ``forget`` and ``test``.

    Logs ``audit/mia_loss`` (population MIA accuracy on the loss), ``audit/mia_loss_auc``,
    ``audit/forget_accuracy``, ``audit/test_accuracy`` and ``audit/seconds`` (its own cost). Each split is capped
    at ``max_samples`` rows, sampled once (``seed``) so successive measurements are comparable. With
    ``at_start=True`` the model is also measured when training begins (kept in ``history`` only).
    ``history`` (a list of dicts with ``step`` and the keys above, without the prefix) can be passed to
    :meth:`UnlearningReport.plot`.
    """

    def __init__(
        self,
        forget: Any,
        test: Any,
        every_n_steps: int = 50,
        max_samples: int | None = 256,
        data_collator: Collator | None = None,
        batch_size: int = 64,
        *,
        seed: int = 0,
        task: str | None = None,
        loss_fn: Any | None = None,
        tokenizer: Any | None = None,
        at_start: bool = True,
        prefix: str = "audit/",
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps}.")
        self.forget, self.test = forget, test
        self.every_n_steps = every_n_steps
        self.data_collator, self.batch_size = data_collator, batch_size
        self.seed, self.task, self.loss_fn, self.tokenizer = seed, task, loss_fn, tokenizer
        self.at_start, self.prefix = at_start, prefix
        self._indices = {}
        for offset, (name, ds) in enumerate((("forget", forget), ("test", test))):
            idx = subsample_indices(dataset_len(ds, name), max_samples, seed + offset)
            if len(idx) < MIN_SAMPLES_PER_CLASS:
                raise ValueError(
                    f"AuditCallback's {name} set has {len(idx)} usable rows; the MIA needs at least "
                    f"{MIN_SAMPLES_PER_CLASS}. Pass a larger {name} set or raise max_samples."
                )
            self._indices[name] = idx
        self.history: list[dict[str, float]] = []
        self._pending: dict[str, float] | None = None

    def attach(self, trainer: Any) -> AuditCallback:
        """Add this callback to ``trainer`` first in line, so every reporting integration sees its keys."""
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    def measure(self, model: torch.nn.Module, step: int) -> dict[str, float]:
        """Audit ``model`` now; returns (and does not log) ``{"step", "mia_loss", ...}``."""
        start = time.perf_counter()
        stats = {
            name: sample_stats(
                model,
                ds,
                data_collator=self.data_collator,
                batch_size=self.batch_size,
                task=self.task,
                loss_fn=self.loss_fn,
                tokenizer=self.tokenizer,
                indices=self._indices[name],
            )
            for name, ds in (("forget", self.forget), ("test", self.test))
        }
        f_loss, t_loss = stats["forget"]["loss"], stats["test"]["loss"]
        result = mia(f_loss[np.isfinite(f_loss)], t_loss[np.isfinite(t_loss)], seed=self.seed)
        return {
            "step": float(step),
            "mia_loss": result.accuracy,
            "mia_loss_auc": result.auc,
            "forget_accuracy": float(np.nanmean(stats["forget"]["correct"])),
            "test_accuracy": float(np.nanmean(stats["test"]["correct"])),
            "seconds": time.perf_counter() - start,
        }

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.at_start and kwargs.get("model") is not None:
            self.history.append(self.measure(kwargs["model"], state.global_step))

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if state.global_step % self.every_n_steps == 0 and kwargs.get("model") is not None:
            entry = self.measure(kwargs["model"], state.global_step)
            self.history.append(entry)
            self._pending = entry
            control.should_log = True
        return control

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._pending is None or logs is None:
            return
        payload = {f"{self.prefix}{k}": v for k, v in self._pending.items() if k != "step"}
        logs.update(payload)
        last = state.log_history[-1] if state.log_history else None
        if last is not None and last.get("step") == state.global_step and payload.keys().isdisjoint(last):
            last.update(payload)
        self._pending = None
