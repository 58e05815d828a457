"""Gradient difference (Liu et al. 2022; TOFU baseline): ascent on forget, descent on retain."""

from __future__ import annotations

import torch

from .base import Method, ObjectiveInputs, mean, register


def _objective(x: ObjectiveInputs) -> torch.Tensor:
    return -mean(x.forget_losses) + x.hparams["retain_weight"] * mean(x.retain_losses)


GRAD_DIFF = register(
    Method(
        name="grad_diff",
        objective=_objective,
        hparams=("retain_weight",),
        description="−mean L_forget + λ·mean L_retain (λ = retain_weight).",
    )
)
