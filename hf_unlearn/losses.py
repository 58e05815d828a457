"""Per-sample losses by task, from model outputs and labels only.

Every function returns a float32 tensor of shape ``[batch]``: one loss per sample, so the unlearning objectives
(and the audit) can average forget and retain samples separately.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._torch import unwrap_model

TASKS = ("single_label", "multi_label", "causal_lm", "image_classification")

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def single_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample for ``logits [B, C]`` and integer ``labels [B]``."""
    return F.cross_entropy(logits.float(), labels.long(), reduction="none")


def multi_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the labels, per sample (``labels`` is a multi-hot ``[B, C]``)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return bce.mean(dim=-1)


def shift_labels(labels: torch.Tensor) -> torch.Tensor:
    """Next-token targets: ``labels`` shifted left by one with ``-100`` appended (transformers' own shift).

    Shifting the labels (a ``[B, T]`` integer tensor) instead of the logits (``[B, T, V]``) leaves the logits
    untouched, so they are never copied for the loss.
    """
    return F.pad(labels, (0, 1), value=-100)[:, 1:]


def supervised_token_counts(labels: torch.Tensor) -> torch.Tensor:
    """Supervised (next-token) targets per sequence of a causal-LM batch: ``[B]`` int64."""
    return (labels[:, 1:] != -100).sum(dim=1)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood per sequence, next-token shifted, ignoring ``-100`` labels.

    Equal per row to ``model(..., labels=row).loss`` (transformers' ``ForCausalLMLoss``) and no heavier: labels are
    shifted, not logits; the logits are viewed, not copied, and up-cast to fp32 only when they are in lower
    precision (as transformers does). A sequence without any supervised token gets loss 0.
    """
    targets = shift_labels(labels)
    nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100,
                          reduction="none").view_as(targets)
    counts = (targets != -100).sum(dim=1)
    return nll.sum(dim=1) / counts.clamp(min=1)


def per_sample_kl(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, task: str) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) per sample, from the model's and a frozen reference's logits on the same batch.

    Causal LM: the next-token KL averaged over each sequence's supervised tokens (0 for a row without any);
    multi-label: the Bernoulli KL averaged over labels; otherwise the KL between the class distributions.
    """
    if task == "multi_label":
        log_p, log_q = F.logsigmoid(logits.float()), F.logsigmoid(ref_logits.float())
        log_p0, log_q0 = F.logsigmoid(-logits.float()), F.logsigmoid(-ref_logits.float())
        return (log_q.exp() * (log_q - log_p) + log_q0.exp() * (log_q0 - log_p0)).mean(dim=-1)
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_q = F.log_softmax(ref_logits.float(), dim=-1)
    kl = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(dim=-1)
    if task != "causal_lm":
        return kl
    mask = shift_labels(labels) != -100
    return (kl * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


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
