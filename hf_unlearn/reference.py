"""The frozen reference (the original model) at training time: a method's reference outputs per step (NPO's
reference losses, SCRUB's logits) and the KL retain term."""

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


def method_reference_outputs(trainer: Any, model: torch.nn.Module, forget_inputs: dict | None,
                             retain_inputs: dict | None, per_sample: Callable) -> dict:
    """The frozen reference's outputs for one paired step (no gradients): its per-sample forget losses
    (``forget_losses``) and, for methods that read logits, its logits on each half the method uses
    (``logits``: ``ref_forget_logits`` / ``ref_retain_logits``); ``per_sample(model, batch)`` gives a model's
    ``(per-sample losses, logits)``. Without ``trainer.ref_model`` the reference is ``model`` with its (fresh PEFT)
    adapters disabled (`reference.reference_outputs`)."""
    method = trainer.method
    halves = {"forget": forget_inputs if method.uses_forget and not method.needs_hidden else None,
              "retain": retain_inputs if method.uses_retain and method.needs_logits else None}
    out: dict = {"logits": {}}
    for half, batch in halves.items():
        if batch is None:
            continue
        losses, logits = reference_outputs(trainer.accelerator, trainer.ref_model, model,
                                           lambda ref, batch=batch: per_sample(ref, batch))
        out[f"{half}_losses"] = losses
        out["logits"][f"ref_{half}_logits"] = logits
    return out
