"""PEFT/LoRA: unlearn only the adapters, use the adapter-free base as NPO's reference, save merged or not."""

from __future__ import annotations

import copy

import torch
from peft import PeftModel, get_peft_model


def is_peft_model(model) -> bool:
    return isinstance(model, PeftModel)


def wrap_with_peft(model, peft_config, gradient_checkpointing: bool = False):
    """Wrap ``model`` with fresh adapters from ``peft_config``; only the adapters train.

    With gradient checkpointing the input embeddings must require grad, or no gradient reaches the adapters of
    a frozen base (`enable_input_require_grads`).
    """
    if gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    return get_peft_model(model, peft_config)


def merged_copy(model) -> torch.nn.Module:
    """A plain transformers model with the adapters merged in (the training model is left untouched)."""
    return copy.deepcopy(model).merge_and_unload()
