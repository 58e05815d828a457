"""Per-sample losses by task, from model outputs and labels only.

Every function returns a float32 tensor of shape ``[batch]``: one loss per sample, so the unlearning objectives
(and the audit) can average forget and retain samples separately.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

TASKS = ("single_label", "multi_label", "causal_lm", "image_classification")

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def single_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample for ``logits [B, C]`` and integer ``labels [B]``."""
    return F.cross_entropy(logits.float(), labels.long(), reduction="none")


def multi_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the labels, per sample (``labels`` is a multi-hot ``[B, C]``)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return bce.mean(dim=-1)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood per sequence, next-token shifted, ignoring ``-100`` labels.

    A sequence without any supervised token gets loss 0.
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1).clamp(min=0),
        reduction="none",
    ).view_as(shift_labels)
    nll = nll * mask
    return nll.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


LOSSES: dict[str, PerSampleLoss] = {
    "single_label": single_label_loss,
    "multi_label": multi_label_loss,
    "causal_lm": causal_lm_loss,
    "image_classification": single_label_loss,
}


def infer_task(model: torch.nn.Module | None, labels: torch.Tensor | None = None) -> str:
    """Guess the task from the model config and the labels' shape and dtype.

    Raises ``ValueError`` when the model has no head that a per-sample loss can be computed from.
    """
    base = unwrap_model(model) if model is not None else None
    name = type(base).__name__ if base is not None else ""
    problem_type = getattr(getattr(base, "config", None), "problem_type", None)
    if problem_type == "multi_label_classification":
        return "multi_label"
    if name.endswith("ForImageClassification"):
        return "image_classification"
    if problem_type == "single_label_classification":
        return "single_label"
    if name.endswith("ForCausalLM"):
        return "causal_lm"
    if name.endswith("ForSequenceClassification"):
        if labels is not None and labels.is_floating_point() and labels.dim() == 2:
            return "multi_label"
        return "single_label"
    if labels is not None:
        if labels.is_floating_point() and labels.dim() == 2:
            return "multi_label"
        if labels.dim() == 2:
            return "causal_lm"
        if labels.dim() == 1:
            return "single_label"
    raise ValueError(
        f"Cannot tell which per-sample loss fits the model {name or '(none)'}: it has no "
        "classification or language-modelling head. Load it with AutoModelForSequenceClassification, "
        "AutoModelForCausalLM or AutoModelForImageClassification, or pass `loss_fn=` (a callable "
        "(logits, labels) -> per-sample losses) / `task=` one of " + ", ".join(TASKS) + "."
    )


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DDP/accelerate wrappers and PEFT adapters to find the underlying transformers model."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    base = getattr(model, "base_model", None)
    inner = getattr(base, "model", None)
    if base is not None and inner is not None and type(model).__name__.startswith("Peft"):
        return inner
    return model


def get_loss_fn(task: str) -> PerSampleLoss:
    """The per-sample loss for a task name; ``ValueError`` lists the valid names."""
    if task not in LOSSES:
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)} or pass a callable loss_fn.")
    return LOSSES[task]


def logits_of(outputs) -> torch.Tensor:
    """The logits of a model output, with an actionable error for heads that return none."""
    logits = outputs.get("logits") if isinstance(outputs, dict) else getattr(outputs, "logits", None)
    if logits is None:
        keys = list(outputs.keys()) if isinstance(outputs, dict) else type(outputs).__name__
        raise ValueError(
            f"The model returned no `logits` (got {keys}); per-sample losses need a classification or "
            "language-modelling head. Load the model with an AutoModelFor... class that has a head."
        )
    return logits


def per_sample_losses(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    *,
    task: str | None = None,
    loss_fn: PerSampleLoss | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on ``inputs`` (which hold ``labels``) and return ``(per-sample losses, logits)``.

    The labels are kept out of the forward pass so the model does not compute a reduced loss of its own.
    """
    inputs = dict(inputs)
    labels = inputs.pop("labels", None)
    if labels is None:
        labels = inputs.pop("label", None)
    if labels is None:
        raise ValueError(
            f"The batch has no `labels` (keys: {sorted(inputs)}); per-sample losses need them. Keep the label column "
            "(rename it to `labels`) and use a collator that passes it through."
        )
    outputs = model(**inputs)
    logits = logits_of(outputs)
    fn = loss_fn or get_loss_fn(task or infer_task(model, labels))
    return fn(logits, labels), logits
