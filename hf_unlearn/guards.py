"""Reliability guards: skip optimizer steps whose loss is not finite, never save non-finite weights."""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback


def zero_loss_like(model: torch.nn.Module) -> torch.Tensor:
    """A zero loss connected to every trainable parameter (so DDP sees a gradient for each, all zero)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.stack([p.view(-1)[0].float() for p in params]).sum() * 0.0


class NonFiniteGuard(TrainerCallback):
    """Drops the update of an optimizer step whose loss was NaN/inf on any process, and stops after too many.

    The trainer calls :meth:`flag` from ``compute_loss``; before the optimizer step every process agrees (one
    all-reduce) whether to drop the gradients (``grad = None``: AdamW then leaves the weights and moments as
    they are). After ``max_consecutive`` dropped steps in a row the run stops with a ``RuntimeError``.
    """

    def __init__(self, accelerator, max_consecutive: int):
        self.accelerator = accelerator
        self.max_consecutive = max_consecutive
        self.pending = False
        self.skipped = 0
        self.consecutive = 0

    def flag(self) -> None:
        self.pending = True

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        bad = torch.tensor(float(self.pending), device=args.device)
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        self.pending = False
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


def is_finite(loss: torch.Tensor) -> bool:
    value = loss.detach().float()
    return bool(torch.isfinite(value).all()) and not math.isnan(float(value))
