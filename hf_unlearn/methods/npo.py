"""Negative Preference Optimization (Zhang et al. 2024, arXiv 2404.05868) with a retain term (NPO+RT).

The log-probability of a forget sample is that of its whole sequence, the **sum** over its supervised tokens
(log π(y|x) = −n·L for a causal LM with n supervised tokens and token-mean loss L; −L for a classifier), for the
trained model θ and a frozen reference (the original model):

    L_NPO = (2/β) · mean softplus(β · (log π_θ − log π_ref))  [= −(2/β)·E log σ(−β log(π_θ/π_ref))]

plus ``retain_weight`` · mean L_retain (or the KL to the reference on retain rows, ``retain_loss="kl"``).

β (``npo_beta``, default 0.1 as in the paper and open-unlearning) is an inverse temperature on the sequence
log-likelihood ratio: while log(π_θ/π_ref) ≫ −1/β (β = 0.1: above about −10 nats per sequence) the gradient is
that of gradient ascent on the sequence NLL; once the sequence has become e^{1/β} times less likely than under the
reference, the softplus saturates and the push on it fades (its weight is σ(β·log ratio)). β → 0 recovers
gradient ascent; a larger β stops earlier. On a per-token scale instead of the sequence sum, β would act like
β × (tokens per sequence), i.e. ~40× smaller on TOFU answers, and NPO would be plain gradient ascent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method, ObjectiveInputs, register


def npo_loss(
    forget_losses: torch.Tensor,
    ref_forget_losses: torch.Tensor,
    beta: float,
    token_counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """The NPO term from the model's and the reference model's per-sample forget losses.

    ``token_counts`` (supervised tokens per sequence, causal LMs) turn token-mean losses into sequence
    log-probabilities; ``None`` = one target per sample (classification).
    """
    log_ratio = ref_forget_losses.float() - forget_losses.float()  # per-token log π_θ − log π_ref
    if token_counts is not None:
        log_ratio = log_ratio * token_counts.to(log_ratio)
    return (2.0 / beta) * F.softplus(beta * log_ratio).mean()


def _objective(x: ObjectiveInputs) -> torch.Tensor:
    loss = npo_loss(x.forget_losses, x.ref_forget_losses, x.hparams["npo_beta"], x.forget_token_counts)
    weight = x.hparams["retain_weight"]
    return loss + weight * x.retain_mean() if weight else loss


def _check(hp: dict) -> None:
    if hp["npo_beta"] <= 0:
        raise ValueError(f"npo_beta={hp['npo_beta']} must be > 0.")


NPO = register(
    Method(
        name="npo",
        objective=_objective,
        uses_retain=True,
        needs_reference=True,
        supports_kl_retain=True,
        hparams=("npo_beta", "retain_weight"),
        defaults={"npo_beta": 0.1},
        check=_check,
        description="(2/β)·mean softplus(β(log π_θ − log π_ref)) over forget sequences + λ·mean L_retain.",
    )
)
