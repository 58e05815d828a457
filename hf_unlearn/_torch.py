"""Module modes for a forward pass: eval mode (no dropout) with autograd still on, each module's mode restored."""

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
