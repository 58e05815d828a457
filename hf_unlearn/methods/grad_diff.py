"""Gradient difference (Liu et al. 2022; TOFU baseline): ascent on forget, descent on retain.

``retain_loss="kl"`` replaces the retain NLL by the KL divergence to the original model on the retain rows,
KL(p_ref ‖ p_θ) per supervised token (the TOFU/open-unlearning "GradDiff with KL" variant); the frozen reference
model is built only for that option.
"""

from __future__ import annotations

import torch

from .base import Method, ObjectiveInputs, register


def _objective(x: ObjectiveInputs) -> torch.Tensor:
    return -x.forget_mean() + x.hparams["retain_weight"] * x.retain_mean()


GRAD_DIFF = register(
    Method(
        name="grad_diff",
        objective=_objective,
        hparams=("retain_weight",),
        supports_kl_retain=True,
        description="−mean L_forget + λ·mean L_retain (λ = retain_weight; retain_loss='kl': KL to the original).",
    )
)
