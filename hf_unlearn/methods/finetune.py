"""Fine-tune on the retain set only: the paper's α = 0 baseline, run for twice the forget-epochs."""

from __future__ import annotations

from .base import Method, register

FINETUNE = register(
    Method(
        name="finetune",
        objective=lambda x: x.retain_mean(),
        uses_forget=False,
        length_multiplier=2.0,
        description="mean L_retain (catastrophic forgetting of the forget set by continued training).",
    )
)
