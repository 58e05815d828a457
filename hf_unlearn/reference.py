"""The frozen reference (the original model) at training time: NPO's reference losses and the KL retain term."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .losses import logits_of, per_sample_kl


def reference_outputs(accelerator: Any, ref_model: torch.nn.Module | None, model: torch.nn.Module,
                      fn: Callable[[torch.nn.Module], Any]) -> Any:
    """``fn(reference)`` without gradients: ``ref_model``, or ``model`` with its (fresh) adapters disabled."""
    with torch.no_grad():
        if ref_model is None:
            with accelerator.unwrap_model(model).disable_adapter():
                return fn(model)
        return fn(ref_model)


def kl_retain_losses(reference: Callable[[Callable], Any], retain_inputs: dict[str, Any],
                     retain_logits: torch.Tensor, task: str) -> torch.Tensor:
    """Per-sample KL(p_ref ‖ p_θ) on the retain rows (``retain_loss="kl"``); ``reference(fn)`` runs ``fn`` on the
    frozen reference (see :func:`reference_outputs`)."""
    batch = {k: v for k, v in retain_inputs.items() if k not in ("labels", "label")}
    ref_logits = reference(lambda ref: logits_of(ref(**batch)))
    return per_sample_kl(retain_logits, ref_logits, retain_inputs["labels"], task)
