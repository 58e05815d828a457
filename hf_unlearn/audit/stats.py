"""Per-sample statistics of a model over a dataset: the raw material of every attack and report.

What each key means, by task (one value per sample):

- ``loss``: the task's per-sample loss from :func:`hf_unlearn.losses.per_sample_losses` (or ``loss_fn``).
- ``entropy``: single-label / image: entropy of the softmax; multi-label: mean binary entropy of the sigmoids;
  causal LM: mean next-token softmax entropy over the supervised tokens (nats).
- ``confidence``: single-label: max softmax probability; multi-label: mean of ``max(p, 1 - p)`` over labels;
  causal LM: mean max next-token probability over the supervised tokens.
- ``correct``: single-label: ``argmax == label`` (0/1); multi-label: **exact match** of ``sigmoid > 0.5`` with
  the multi-hot labels over all labels (0/1); causal LM: fraction of supervised tokens whose argmax is the label.

Causal LMs also get (next-token shifted, ``-100`` labels ignored):

- ``nll``: token-mean negative log-likelihood (independent of ``loss_fn``).
- ``min_k``: Min-K% log-probability (Shi et al. 2024): mean of the ``ceil(k · n)`` lowest token log-probabilities
  (``k = 0.2``); higher means "more likely seen in training".
- ``zlib``: ``nll`` divided by the zlib-compressed length in bytes of the supervised tokens (Carlini et al. 2021).
  Without a ``tokenizer`` the tokens are compressed as raw little-endian integer bytes (uint16 when ids fit,
  else uint32); with one, as the UTF-8 bytes of the decoded text (kept in memory only). Lower means "member".
- ``n_tokens``: number of supervised tokens. A sequence without any gets ``NaN`` in every other key.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import send_to_device

from ..losses import TASKS, infer_task, per_sample_losses
from ._batching import Collator, clean_row, collate, dataset_len, iter_rows, model_input_names

CLASSIFICATION_KEYS = ("loss", "entropy", "confidence", "correct")
CAUSAL_LM_KEYS = CLASSIFICATION_KEYS + ("nll", "min_k", "zlib", "n_tokens")
MIN_K_FRACTION = 0.2


def _resolve_task(model: torch.nn.Module, task: str | None, labels: torch.Tensor, logits: torch.Tensor) -> str:
    if task is not None:
        return task
    try:
        return infer_task(model, labels)
    except ValueError:
        if logits.dim() == 3:
            return "causal_lm"
        if labels.is_floating_point() and labels.dim() == 2:
            return "multi_label"
        return "single_label"


def _classification_stats(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    logp = F.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    return {
        "entropy": -(p * logp).sum(-1),
        "confidence": p.max(-1).values,
        "correct": (logits.argmax(-1) == labels.long()).float(),
    }


def _multi_label_stats(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    p = torch.sigmoid(logits.float())
    eps = 1e-12
    ent = -(p * (p + eps).log() + (1 - p) * (1 - p + eps).log())
    return {
        "entropy": ent.mean(-1),
        "confidence": torch.maximum(p, 1 - p).mean(-1),
        "correct": ((p > 0.5) == (labels > 0.5)).all(-1).float(),
    }


def _zlib_length(tokens: torch.Tensor, tokenizer: Any | None) -> int:
    ids = tokens.tolist()
    if tokenizer is not None:
        raw = tokenizer.decode(ids).encode("utf-8")
    else:
        dtype = np.uint16 if (not ids or max(ids) < 2**16) else np.uint32
        raw = np.asarray(ids, dtype=dtype).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    return len(zlib.compress(raw))


def _causal_lm_stats(
    logits: torch.Tensor, labels: torch.Tensor, tokenizer: Any | None, min_k: float
) -> dict[str, torch.Tensor]:
    """Token-level statistics, one sequence at a time to keep the ``[T, V]`` float32 copies small."""
    out: dict[str, list[float]] = {
        k: [] for k in ("entropy", "confidence", "correct", "nll", "min_k", "zlib", "n_tokens")
    }
    for row_logits, row_labels in zip(logits, labels):
        target = row_labels[1:]
        mask = target != -100
        n = int(mask.sum())
        out["n_tokens"].append(float(n))
        if n == 0:
            for key in ("entropy", "confidence", "correct", "nll", "min_k", "zlib"):
                out[key].append(math.nan)
            continue
        lg = row_logits[:-1][mask].float()
        tgt = target[mask].long()
        logp = F.log_softmax(lg, dim=-1)
        p = logp.exp()
        tok_logp = logp.gather(-1, tgt[:, None]).squeeze(-1)
        nll = float(-tok_logp.mean())
        k = max(1, math.ceil(min_k * n))
        out["entropy"].append(float(-(p * logp).sum(-1).mean()))
        out["confidence"].append(float(p.max(-1).values.mean()))
        out["correct"].append(float((lg.argmax(-1) == tgt).float().mean()))
        out["nll"].append(nll)
        out["min_k"].append(float(tok_logp.sort().values[:k].mean()))
        out["zlib"].append(nll / _zlib_length(tgt.cpu(), tokenizer))
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}


def sample_stats(
    model: torch.nn.Module,
    dataset: Any,
    *,
    data_collator: Collator | None = None,
    batch_size: int = 64,
    task: str | None = None,
    loss_fn: Any | None = None,
    device: str | torch.device | None = None,
    tokenizer: Any | None = None,
    indices: Any | None = None,
    min_k: float = MIN_K_FRACTION,
) -> dict[str, np.ndarray]:
    """Per-sample ``loss``, ``entropy``, ``confidence``, ``correct`` (+ LM keys) of ``model`` on ``dataset``.

    Batched under ``torch.no_grad()`` with the model in eval mode (its previous mode is restored). ``indices``
    restricts (and orders) the rows used. Non-numeric columns and columns the model's ``forward`` does not take
    are dropped before collating. Without ``data_collator``, rows are batched with ``default_data_collator``,
    or right-padded (``input_ids`` with the tokenizer's / model's pad id else 0, ``attention_mask`` 0,
    ``labels`` -100) when their lengths vary. See the module docstring for the meaning of each key.
    """
    stats, _ = sample_stats_with_task(
        model,
        dataset,
        data_collator=data_collator,
        batch_size=batch_size,
        task=task,
        loss_fn=loss_fn,
        device=device,
        tokenizer=tokenizer,
        indices=indices,
        min_k=min_k,
    )
    return stats


@torch.no_grad()
def sample_stats_with_task(
    model: torch.nn.Module,
    dataset: Any,
    *,
    data_collator: Collator | None = None,
    batch_size: int = 64,
    task: str | None = None,
    loss_fn: Any | None = None,
    device: str | torch.device | None = None,
    tokenizer: Any | None = None,
    indices: Any | None = None,
    min_k: float = MIN_K_FRACTION,
) -> tuple[dict[str, np.ndarray], str]:
    """:func:`sample_stats` and the task it resolved (given, inferred from the model, or from the logits)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if not 0 < min_k <= 1:
        raise ValueError(f"min_k is a fraction of tokens in (0, 1], got {min_k}.")
    n = dataset_len(dataset)
    order = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(order) == 0:
        raise ValueError("The dataset given to sample_stats is empty; pass at least one row.")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    allowed = model_input_names(model)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None:
        pad_id = getattr(getattr(model, "config", None), "pad_token_id", None)
    pad_id = int(pad_id) if isinstance(pad_id, int) else 0

    chunks: dict[str, list[np.ndarray]] = {}
    resolved: str | None = task
    was_training = model.training
    model.eval()
    try:
        for rows in iter_rows(dataset, order, batch_size):
            batch = send_to_device(collate([clean_row(r, allowed) for r in rows], data_collator, pad_id), device)
            labels = batch.get("labels", batch.get("label"))
            losses, logits = per_sample_losses(model, batch, task=resolved, loss_fn=loss_fn)
            if resolved is None:
                resolved = _resolve_task(model, None, labels, logits)
            if resolved == "causal_lm":
                extra = _causal_lm_stats(logits, labels, tokenizer, min_k)
                losses = torch.where(extra["n_tokens"].to(losses.device) > 0, losses.double(), math.nan)
            elif resolved == "multi_label":
                extra = _multi_label_stats(logits, labels)
            else:
                extra = _classification_stats(logits, labels)
            extra["loss"] = losses
            for key, value in extra.items():
                chunks.setdefault(key, []).append(value.detach().double().cpu().numpy())
    finally:
        model.train(was_training)
    assert resolved is not None
    return {key: np.concatenate(chunks[key]) for key in _keys_for(resolved) if key in chunks}, resolved


def _keys_for(task: str | None) -> tuple[str, ...]:
    return CAUSAL_LM_KEYS if task == "causal_lm" else CLASSIFICATION_KEYS


def stats_task(stats: dict[str, np.ndarray]) -> str:
    """``"causal_lm"`` when ``stats`` has the LM keys, else ``"classification"``."""
    return "causal_lm" if "min_k" in stats else "classification"
