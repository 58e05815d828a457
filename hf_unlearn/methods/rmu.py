"""RMU, Representation Misdirection for Unlearning (Li et al. 2024, the WMDP paper, arXiv 2403.03218, Algorithm 1).

At one decoder layer ℓ, RMU pushes the trained model's activations on forget tokens towards a fixed random
direction scaled up, c·u, and keeps its activations on retain tokens where the frozen original model has them:

    L = mean_rows (1/n) Σ_t ‖h_θ(t) − c·u‖² / H  +  α · mean_rows (1/n) Σ_t ‖h_θ(t) − h_frozen(t)‖² / H

over each row's n supervised tokens (labels ≠ −100; answer tokens on TOFU), H the hidden size (the squared error
averaged over the hidden dimension, as the reference code's ``mse_loss`` does). u is drawn once, uniform in [0, 1)
per coordinate and normalised to unit length (``torch.rand``, seeded by ``rmu_seed``: the same u for every step,
on every process and after a resume). Only the MLP output projections of layers ℓ−2 … ℓ are updated (the paper's
choice; ``rmu_params`` is a regex over the parameter names inside a decoder layer), every other parameter is
frozen before the optimizer is built.

Hyperparameters: ``hidden_layer`` ℓ (``None``: layer 7 of 32 scaled to the model's depth, the paper's and
open-unlearning's layer; 7 of SmolLM2-135M's 30), ``rmu_steering`` c (6.5, the paper's Zephyr-7B value), ``rmu_alpha``
α (1200, idem). Both depend on the activation norms of the model and layer: tune them on dev rows. The frozen
reference runs on the retain rows only, up to layer ℓ; the forget rows never go through it.
"""

from __future__ import annotations

import torch

from .._torch import unwrap_model
from ..hidden import layer_parameters, resolve_layer
from .base import Method, ObjectiveInputs, register


def control_vector(hidden_size: int, steering: float, seed: int) -> torch.Tensor:
    """c·u: u uniform in [0, 1)^H from a generator seeded by ``seed``, normalised to unit length."""
    u = torch.rand(hidden_size, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
    return u / u.norm() * steering


def activation_loss(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of (1/n) Σ_t mean_H (h − target)² over each row's supervised tokens (fp32; ``target``
    ``[B, T, H]`` or broadcastable, ``mask`` ``[B, T]``; a row without supervised tokens counts 0)."""
    squared = (hidden.float() - target.float()).pow(2).mean(dim=-1)
    mask = mask.to(squared.dtype)
    return ((squared * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()


def rmu_loss(x: ObjectiveInputs) -> torch.Tensor:
    hp, h = x.hparams, x.hidden
    target = control_vector(h["forget"].size(-1), hp["rmu_steering"], hp["rmu_seed"]).to(h["forget"].device)
    forget = activation_loss(h["forget"], target, h["forget_mask"])
    retain = activation_loss(h["retain"], h["ref_retain"], h["retain_mask"])
    return forget + hp["rmu_alpha"] * retain


def freeze_all_but_updated(model: torch.nn.Module, hp: dict) -> None:
    """Freeze every parameter except those RMU updates (``rmu_params`` in layers ℓ−2 … ℓ)."""
    layer = resolve_layer(model, hp["hidden_layer"])
    names = set(layer_parameters(model, range(max(0, layer - 2), layer + 1), hp["rmu_params"]))
    if not names:
        raise ValueError(f"rmu_params={hp['rmu_params']!r} matches no parameter of decoder layers "
                         f"{max(0, layer - 2)}–{layer}; pass a regex over the names inside a layer, e.g. "
                         "'mlp\\.down_proj\\.weight'.")
    for name, param in unwrap_model(model).named_parameters():
        param.requires_grad_(name in names)


def _check(hp: dict) -> None:
    if hp["rmu_alpha"] < 0:
        raise ValueError(f"rmu_alpha={hp['rmu_alpha']} must be ≥ 0.")
    if hp["hidden_layer"] is not None and hp["hidden_layer"] < 0:
        raise ValueError(f"hidden_layer={hp['hidden_layer']} must be ≥ 0 (or None for the automatic layer).")


RMU = register(
    Method(
        name="rmu",
        objective=rmu_loss,
        needs_reference=True,
        needs_hidden=True,
        prepare=freeze_all_but_updated,
        tasks=("causal_lm",),
        hparams=("hidden_layer", "rmu_steering", "rmu_alpha", "rmu_seed", "rmu_params"),
        defaults={"hidden_layer": None, "rmu_steering": 6.5, "rmu_alpha": 1200.0, "rmu_seed": 0,
                  "rmu_params": r"mlp\.(down_proj|c_proj|fc2|dense_4h_to_h)\.weight$"},
        check=_check,
        description="‖h_ℓ(forget) − c·u‖² + α‖h_ℓ(retain) − h_ℓ^frozen(retain)‖² at one layer; MLPs of ℓ−2…ℓ trained.",
    )
)
