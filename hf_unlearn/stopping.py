"""Adaptive stop: end the run once the forget set looks like held-out data (its loss sits at τ)."""

from __future__ import annotations

import torch
from transformers import TrainerCallback


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
