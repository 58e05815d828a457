"""Rows of a batch: causal-LM rows without a supervised token (every label after the first is -100) have no loss.

The per-sample loss gives such a row 0; counted in a mean it would pull the forget loss, the retain loss and τ
towards 0. The trainer leaves them out of every mean (τ, forget, retain); the data checks refuse forget and
validation sets that hold any (`count_unsupervised`).
"""

from __future__ import annotations

from typing import Any

import torch

from .losses import supervised_token_counts

IGNORE_INDEX = -100


def supervised_rows(labels: torch.Tensor | None, task: str | None, n: int) -> torch.Tensor:
    """A float ``[n]`` mask: 1 for rows with a supervised (next-token) label, 0 for fully masked causal-LM rows;
    all ones for other tasks."""
    if task != "causal_lm" or labels is None or labels.dim() < 2:
        return torch.ones(n, dtype=torch.float32, device=labels.device if labels is not None else None)
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=1).float()


def _halves(inputs: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if "num_forget" in inputs:
        n, labels = int(inputs["num_forget"]), inputs.get("labels")
        return (None, None) if labels is None else (labels[:n], labels[n:])
    return inputs["forget"].get("labels"), inputs["retain"].get("labels")


def drop_unsupervised(task: str | None, inputs: dict[str, Any], forget: torch.Tensor | None,
                      retain: torch.Tensor | None, reference: torch.Tensor | None = None):
    """``(forget, retain, reference)`` per-sample losses of a paired batch without its fully masked causal-LM rows
    (``reference``: the frozen model's losses on the forget rows)."""
    if task != "causal_lm":
        return forget, retain, reference
    forget_labels, retain_labels = _halves(inputs)
    if forget is not None and forget_labels is not None and len(forget) == len(forget_labels):
        keep = supervised_rows(forget_labels, task, len(forget)).bool()
        forget = forget[keep]
        if reference is not None and len(reference) == len(keep):
            reference = reference[keep]
    if retain is not None and retain_labels is not None and len(retain) == len(retain_labels):
        retain = retain[supervised_rows(retain_labels, task, len(retain)).bool()]
    return forget, retain, reference


def count_unsupervised(label_rows: list[list[int]]) -> int:
    """How many label rows have no supervised token after the first position."""
    return sum(1 for row in label_rows if all(v == IGNORE_INDEX for v in list(row)[1:]))


def batch_rows(inputs: dict[str, Any], start: int, stop: int | None) -> dict[str, Any]:
    """Rows ``start:stop`` of every batched tensor in a batch."""
    return {k: v[start:stop] if isinstance(v, torch.Tensor) and v.dim() > 0 else v for k, v in inputs.items()}


def kept_token_counts(inputs: dict[str, Any]) -> torch.Tensor:
    """Supervised tokens per causal-LM row of a batch half, for the rows `drop_unsupervised` keeps (``[kept]``)."""
    counts = supervised_token_counts(inputs["labels"])
    return counts[counts > 0]
