"""Trainer callbacks of `UnlearningTrainer`: the non-finite guard (skip optimizer steps whose loss is not finite;
never save non-finite weights) and the adaptive stop at τ (`TauStop`); `StepProgress` for quiet runs."""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback


class StepProgress(TrainerCallback):
    """One progress line (step k/N, elapsed, estimated time left) at the first step, then every ``every_s`` seconds
    and at the end: for runs without a progress bar (``disable_tqdm``), so a long fine-tuning is not silent."""

    def __init__(self, label: str, every_s: float = 30.0):
        self.label, self.every_s = label, every_s

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now, step, total = time.perf_counter(), state.global_step, state.max_steps
        if state.is_world_process_zero and (step == 1 or step == total or now - self.last >= self.every_s):
            self.last, elapsed = now, now - self.start
            left = elapsed / step * (total - step)
            print(f"  {self.label}: step {step}/{total}, {elapsed:.0f} s elapsed, ~{left:.0f} s left", flush=True)


class NonFiniteGuard(TrainerCallback):
    """Drops the update of an optimizer step whose loss was NaN/inf on any process, and stops after too many.

    The trainer passes every loss to :meth:`flag` (no device sync: the check stays a tensor until the step ends);
    before the optimizer step every process agrees (one all-reduce) whether to drop the gradients (``grad = None``:
    AdamW then leaves the weights and moments as they are, whatever NaNs the backward produced). After
    ``max_consecutive`` dropped steps in a row the run stops with a ``RuntimeError``.
    """

    def __init__(self, accelerator, max_consecutive: int):
        self.accelerator = accelerator
        self.max_consecutive = max_consecutive
        self.pending: torch.Tensor | None = None
        self.skipped = 0
        self.consecutive = 0

    def flag(self, loss: torch.Tensor) -> None:
        """Remember whether this micro-batch's loss was non-finite (as a tensor: no synchronisation here)."""
        bad = (~torch.isfinite(loss.detach())).any().float()
        self.pending = bad if self.pending is None else torch.maximum(self.pending, bad)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        bad = self.pending if self.pending is not None else torch.zeros((), device=args.device)
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad.to(args.device), reduction="sum")
        self.pending = None
        if bad.item() == 0:
            self.consecutive = 0
            return
        for p in model.parameters():
            p.grad = None
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive:
            raise RuntimeError(
                f"{self.consecutive} optimizer steps in a row had a non-finite (NaN/inf) loss; stopping without "
                "saving a final model. Lower learning_rate, check the inputs for NaN, or disable fp16 (try bf16)."
            )


def check_finite_weights(model: torch.nn.Module) -> None:
    """``ValueError`` naming the first parameter holding NaN/inf (such a model must never be saved or pushed)."""
    for name, param in model.named_parameters():
        if not torch.isfinite(param.detach()).all():
            raise ValueError(
                f"Parameter {name!r} holds NaN/inf values: refusing to save or push a broken model. Resume from an "
                "earlier checkpoint with a lower learning_rate."
            )


class TauStop(TrainerCallback):
    """Stop at the end of a forget-epoch in which the forget loss sat at τ.

    "Sat at τ" means: in at least half of the epoch's batches (over all processes) the mean forget loss was ≥ τ,
    i.e. the ReLU switched the ascent off at least as often as it fired. Once there, the ∇τ push has done its work
    and further steps only fine-tune on the retain set. ``forget_epochs`` stays the upper bound of the run.
    """

    def __init__(self, trainer, min_share: float = 0.5):
        self.trainer = trainer
        self.min_share = min_share
        self.at_tau: list[torch.Tensor] = []  # per batch: forget mean ≥ τ (as 0/1 tensors, no device sync)
        self.stopped_at: int | None = None

    def observe(self, forget_mean: torch.Tensor) -> None:
        tau = self.trainer.tau
        if tau is not None:
            self.at_tau.append((forget_mean >= tau).float())

    def on_epoch_end(self, args, state, control, **kwargs):
        accelerator = self.trainer.accelerator
        hits = torch.stack(self.at_tau).sum() if self.at_tau else torch.zeros((), device=args.device)
        counts = torch.stack([hits.to(args.device), torch.tensor(float(len(self.at_tau)), device=args.device)])
        if accelerator.num_processes > 1:
            counts = accelerator.reduce(counts, reduction="sum")
        self.at_tau = []
        if counts[1] > 0 and float(counts[0] / counts[1]) >= self.min_share:
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control
