"""Selective Synaptic Dampening (Foster et al., AAAI 2024, arXiv 2308.07707): one shot, no training steps.

The importance of each parameter on a data set is the diagonal of the Fisher information, estimated as in the
reference implementation (``SSD/src/ssd.py::ParameterPerturber.calc_importance``) by the mean over mini-batches
of the squared gradient of the batch-mean loss, with the model in eval mode. With ``[]_D`` on the full training
data (retain ∪ forget: the reference's ``full_train_dl``) and ``[]_f`` on the forget set, every parameter with

    []_f > α · []_D                       (selection: far more important to the forget set)

is multiplied by ``min(λ · []_D / []_f, 1)`` (dampening, bounded by 1 so no weight grows); every other parameter
is left as it is. The reference (``forget_*_main.py``) uses α (``selection_weighting``) = 10 and
λ (``dampening_constant``) = 1 for ResNet18, and α = 5 for ViT on full-class forgetting; its forget sets are small
(100 random images, or one class of 10–100). Since the full data contains the forget set, []_D ≥ (forget batches /
full batches) · []_f, so with a forget set of k % of the data nothing is selected unless α < 100/k (α = 10 works
only below 10 %). So α is automatic unless given: ``SSD_ALPHA_SCALE / forget fraction`` (0.5 / f: 3.3 at 15 %, the
benchmark's rule, chosen on its dev rows); a warning says so when almost nothing was dampened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

from .._torch import eval_mode
from .base import BatchLoss, Method, register

logger = logging.getLogger(__name__)

#: the automatic α = SSD_ALPHA_SCALE / forget fraction (benchmarks/goemotions.py: chosen on dev rows, seed 0)
SSD_ALPHA_SCALE = 0.5
#: below this fraction of dampened weights SSD warns that it changed almost nothing
FEW_DAMPENED = 0.005


def diagonal_fisher(model: torch.nn.Module, batches: Iterable[dict], batch_loss: BatchLoss) -> dict[str, torch.Tensor]:
    """Mean over batches of the squared gradient of each batch's mean loss, per trainable parameter (fp32)."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("SSD found no trainable parameter to dampen: unfreeze the model's weights (requires_grad).")
    importance = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    count = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        batch_loss(model, batch).backward()
        for name, p in params.items():
            if p.grad is not None:
                importance[name] += p.grad.detach().float().pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    if count == 0:
        raise ValueError("SSD got no batches to estimate parameter importance from: the data set is empty.")
    return {name: imp / count for name, imp in importance.items()}


@torch.no_grad()
def dampen(model: torch.nn.Module, full: dict[str, torch.Tensor], forget: dict[str, torch.Tensor],
           selection_weighting: float, dampening_constant: float) -> dict[str, float]:
    """Multiply each selected weight (forget > α·full importance) by min(λ·full/forget, 1); returns counts."""
    selected = total = 0
    for name, p in model.named_parameters():
        if name not in full:
            continue
        f_imp, d_imp = forget[name], full[name]
        mask = f_imp > selection_weighting * d_imp
        factor = (dampening_constant * d_imp / f_imp.clamp(min=torch.finfo(torch.float32).tiny)).clamp(max=1.0)
        p.mul_(torch.where(mask, factor, torch.ones_like(factor)).to(p.dtype))
        selected += int(mask.sum())
        total += mask.numel()
    return {"ssd_dampened_params": float(selected), "ssd_dampened_fraction": selected / max(1, total)}


def selective_synaptic_dampening(model: torch.nn.Module, forget_batches: Iterable[dict],
                                 full_batches: Iterable[dict], batch_loss: BatchLoss,
                                 hparams: dict[str, float]) -> dict[str, float]:
    """SSD in place: importances on the forget set and on the full training data, then dampening."""
    with eval_mode(model):  # as the reference: no dropout in the importance estimates
        forget = diagonal_fisher(model, forget_batches, batch_loss)
        full = diagonal_fisher(model, full_batches, batch_loss)
    alpha = hparams["ssd_alpha"]
    if alpha is None:  # automatic: SSD_ALPHA_SCALE / forget fraction (rows of the two loaders)
        n_forget, n_full = (len(getattr(b, "dataset", ())) for b in (forget_batches, full_batches))
        alpha = SSD_ALPHA_SCALE * n_full / n_forget if n_forget else 10.0
    summary = dampen(model, full, forget, alpha, hparams["ssd_lambda"])
    if summary["ssd_dampened_fraction"] < FEW_DAMPENED:
        logger.warning(
            "SSD dampened %s of the weights: none or almost none has forget importance > ssd_alpha=%.3g × full "
            "importance, so the model barely changed. The full data contains the forget set, so its importance is at "
            "least (forget batches / full batches) × the forget importance: with a forget set of k %% of the data "
            "nothing can be selected unless ssd_alpha < 100/k. Lower ssd_alpha (e.g. to a third of 100/k; unset, it "
            "is %g / forget fraction).", f"{summary['ssd_dampened_fraction']:.2%}", alpha, SSD_ALPHA_SCALE)
    return {**summary, "ssd_alpha": float(alpha)}


def _check(hp: dict) -> None:
    for name in ("ssd_alpha", "ssd_lambda"):
        if hp[name] is not None and not hp[name] > 0:
            raise ValueError(f"{name}={hp[name]} must be > 0.")


SSD = register(
    Method(
        name="ssd",
        one_shot=selective_synaptic_dampening,
        uses_retain=True,
        hparams=("ssd_alpha", "ssd_lambda"),
        defaults={"ssd_alpha": None, "ssd_lambda": 1.0},
        check=_check,
        description="one shot: weights with forget importance > α·full importance scaled by min(λ·full/forget, 1).",
    )
)
