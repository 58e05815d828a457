"""Reliability guards: skip optimizer steps whose loss is not finite, never save non-finite weights."""

from __future__ import annotations

import torch
from transformers import TrainerCallback


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
