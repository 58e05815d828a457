"""Negative Preference Optimization (Zhang et al. 2024, arXiv 2404.05868) with a retain term (NPO+RT).

With log π = −L (per-sample loss) for the trained model θ and a frozen reference (the original model):

    L_NPO = (2/β) · mean softplus(β · (L_ref − L_θ))  [= −(2/β)·E log σ(−β log(π_θ/π_ref))]

plus ``retain_weight`` · mean L_retain. As β → 0 it recovers gradient ascent; the softplus bounds the push.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method, ObjectiveInputs, mean, register


def npo_loss(forget_losses: torch.Tensor, ref_forget_losses: torch.Tensor, beta: float) -> torch.Tensor:
    """The NPO term from the model's and the reference model's per-sample forget losses."""
    log_ratio = ref_forget_losses.float() - forget_losses.float()  # log π_θ − log π_ref
    return (2.0 / beta) * F.softplus(beta * log_ratio).mean()


def _objective(x: ObjectiveInputs) -> torch.Tensor:
    loss = npo_loss(x.forget_losses, x.ref_forget_losses, x.hparams["npo_beta"])
    weight = x.hparams["retain_weight"]
    return loss + weight * mean(x.retain_losses) if weight else loss


NPO = register(
    Method(
        name="npo",
        objective=_objective,
        uses_retain=True,
        needs_reference=True,
        hparams=("npo_beta", "retain_weight"),
        description="(2/β)·mean softplus(β(L_ref − L_forget)) + λ·mean L_retain, frozen reference model.",
    )
)
