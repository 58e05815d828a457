"""Torch helpers every layer may use: eval mode for a forward pass (no dropout, autograd still on, each module's mode
restored), the model beneath DDP/accelerate wrappers and PEFT adapters, and whether DeepSpeed ZeRO-3 partitions the
parameters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put every submodule in eval mode (dropout off, batch-norm running statistics used and not updated) for the
    enclosed code; gradients still flow. Each module's own ``training`` flag is restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DDP/accelerate wrappers and PEFT adapters to find the underlying transformers model."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    base = getattr(model, "base_model", None)
    inner = getattr(base, "model", None)
    if base is not None and inner is not None and type(model).__name__.startswith("Peft"):
        return inner
    return model


def zero3(args) -> bool:
    """Whether DeepSpeed ZeRO-3 partitions the parameters across ranks (no rank holds a whole layer), read from the
    training arguments: their ``deepspeed_plugin`` is the one the Trainer's accelerator runs with (from
    ``deepspeed=...`` or ``accelerate launch --use_deepspeed``), and it is there before any trainer is built."""
    return getattr(getattr(args, "deepspeed_plugin", None), "zero_stage", None) == 3
