"""SimNPO (Fan et al. 2024, arXiv 2410.07163): NPO without a reference model, on the length-normalised likelihood.

NPO compares each forget sequence with a frozen reference, log π_θ − log π_ref, summed over its tokens; long
answers then dominate and the reference costs a second model. SimNPO drops the reference and normalises by length
(the SimPO reward): with L the token-mean NLL of a forget answer (log π_θ(y|x)/|y| = −L),

    L_SimNPO = −(2/β) · mean log σ(β · (L − δ)) = (2/β) · mean softplus(−β · (L − δ))

plus ``retain_weight`` · mean L_retain. The paper writes the margin
as γ inside the sigmoid, σ(−(β/|y|)·log π_θ(y|x) − γ); here, as in open-unlearning, ``simnpo_delta`` = δ is on
the loss scale (paper's γ = β·δ). The push on a sample fades once its loss is a few 1/β above δ (its weight is
σ(−β(L − δ))): unlike gradient ascent the objective is bounded below (→ 0 as L → ∞), so no sample is driven
to an unbounded loss. Defaults: β = 4.5, δ = 0, the authors' TOFU forget10 settings (open-unlearning's SimNPO
config; those runs weight the retain NLL by 0.125: ``retain_weight=0.125``). No reference model is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method, ObjectiveInputs, register


def simnpo_loss(forget_losses: torch.Tensor, beta: float, delta: float = 0.0) -> torch.Tensor:
    """The SimNPO forget term from per-sample token-mean forget losses (fp32)."""
    return (2.0 / beta) * F.softplus(-beta * (forget_losses.float() - delta)).mean()


def _objective(x: ObjectiveInputs) -> torch.Tensor:
    hp = x.hparams
    loss = simnpo_loss(x.forget_losses, hp["simnpo_beta"], hp["simnpo_delta"])
    weight = hp["retain_weight"]
    return loss + weight * x.retain_mean() if weight else loss


def _check(hp: dict) -> None:
    if not hp["simnpo_beta"] > 0:
        raise ValueError(f"simnpo_beta={hp['simnpo_beta']} must be > 0.")


SIMNPO = register(
    Method(
        name="simnpo",
        objective=_objective,
        hparams=("simnpo_beta", "simnpo_delta", "retain_weight"),
        defaults={"simnpo_beta": 4.5, "simnpo_delta": 0.0},
        check=_check,
        description="(2/β)·mean softplus(−β(L_forget − δ)) + λ·mean L_retain; no reference model.",
    )
)
