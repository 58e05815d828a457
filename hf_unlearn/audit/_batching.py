"""Turn an already-tokenized dataset into model-ready batches, dropping everything that is not a model input.

Rows may come from a ``datasets.Dataset`` (any format) or from a map-style torch ``Dataset`` of dicts. Columns
that are not numeric (raw text, string ids) or that the model's ``forward`` does not take (integer ids, metadata)
are dropped before collating, so nothing of that kind ever reaches the model or the audit's outputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from accelerate.utils import send_to_device
from transformers import default_data_collator

from .._torch import unwrap_model as _unwrap
from ..data.sampling import seeded_subset

LABEL_KEYS = ("labels", "label", "label_ids")
PAD_VALUES = {"attention_mask": 0, "labels": -100, "label_ids": -100, "token_type_ids": 0}

Collator = Callable[[list[dict[str, Any]]], Mapping[str, Any]]


def dataset_len(dataset: Any, name: str = "dataset") -> int:
    """Length of a map-style dataset, with an actionable error for iterable ones."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise ValueError(
            f"`{name}` must be a map-style dataset (a `datasets.Dataset` or a torch Dataset with __len__ and "
            f"__getitem__), got {type(dataset).__name__}. Materialise streaming datasets first, e.g. "
            "`Dataset.from_list(list(iterable.take(n)))`."
        )
    return len(dataset)


def subsample_indices(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    """All indices, or a seeded sorted random subset of ``max_samples`` of them."""
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be a positive integer or None, got {max_samples}.")
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    return seeded_subset(n, max_samples, seed)


def model_input_names(model: torch.nn.Module) -> set[str] | None:
    """Explicit parameter names of ``model.forward`` plus the label keys (``None`` if it only takes ``**kwargs``)."""
    try:
        params = inspect.signature(_unwrap(model).forward).parameters
    except (TypeError, ValueError):
        return None
    names = {
        p.name
        for p in params.values()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }
    return (names | set(LABEL_KEYS)) if names else None


def _is_numeric(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    if isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)):
        return True
    if isinstance(value, (list, tuple)):
        return len(value) == 0 or _is_numeric(value[0])
    return False


def clean_row(row: Mapping[str, Any], allowed: set[str] | None) -> dict[str, Any]:
    """Keep only numeric values whose key the model accepts (or a label key)."""
    return {k: v for k, v in row.items() if (allowed is None or k in allowed) and v is not None and _is_numeric(v)}


def iter_rows(dataset: Any, indices: Sequence[int], batch_size: int) -> Iterator[list[Mapping[str, Any]]]:
    """Yield lists of raw rows (dicts), ``batch_size`` at a time, in ``indices`` order."""
    is_hf = hasattr(dataset, "column_names") and hasattr(dataset, "select")
    for start in range(0, len(indices), batch_size):
        idx = [int(i) for i in indices[start : start + batch_size]]
        if is_hf:
            cols = dataset[idx]
            keys = list(cols.keys())
            yield [dict(zip(keys, vals)) for vals in zip(*(cols[k] for k in keys))]
        else:
            rows = [dataset[i] for i in idx]
            if rows and not isinstance(rows[0], Mapping):
                raise ValueError(
                    f"Dataset rows must be dicts of model inputs (e.g. input_ids, attention_mask, labels), got "
                    f"{type(rows[0]).__name__}. Wrap your dataset so __getitem__ returns a dict."
                )
            yield rows


def _shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return tuple(value.shape)
    return tuple(np.shape(value))


def _needs_padding(rows: list[dict[str, Any]]) -> bool:
    for key in rows[0]:
        if len({_shape(r[key]) for r in rows}) > 1:
            return True
    return False


def pad_collate(rows: list[dict[str, Any]], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-pad 1-D sequences: ``input_ids`` with ``pad_token_id``, ``attention_mask`` 0, ``labels`` -100.

    Adds an ``attention_mask`` when the rows have ``input_ids`` of varying lengths but none of their own.
    """
    rows = [
        {k: torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for k, v in r.items()}
        for r in rows
    ]
    if "input_ids" in rows[0] and "attention_mask" not in rows[0]:
        for r in rows:
            r["attention_mask"] = torch.ones_like(r["input_ids"], dtype=torch.long)
    batch: dict[str, torch.Tensor] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if len({tuple(v.shape) for v in values}) == 1:
            batch[key] = torch.stack(values)
            continue
        if any(v.dim() != 1 for v in values):
            raise ValueError(
                f"Column {key!r} has rows of different multi-dimensional shapes; pass a `data_collator` that "
                "knows how to batch it."
            )
        pad = pad_token_id if key == "input_ids" else PAD_VALUES.get(key, 0)
        batch[key] = torch.nn.utils.rnn.pad_sequence(values, batch_first=True, padding_value=pad)
    if "label" in batch:
        batch["labels"] = batch.pop("label")
    return batch


def collate(rows: list[dict[str, Any]], data_collator: Collator | None, pad_token_id: int = 0) -> dict[str, Any]:
    """Batch cleaned rows with ``data_collator``, else ``default_data_collator``, else :func:`pad_collate`."""
    if data_collator is not None:
        return dict(data_collator(rows))
    if _needs_padding(rows):
        return pad_collate(rows, pad_token_id)
    return default_data_collator(rows)


def model_outputs(
    model: torch.nn.Module, dataset: Any, *, data_collator: Collator | None = None, batch_size: int = 64,
    pooled: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A classifier's logits (float64) on every row of ``dataset`` in order, the rows' labels (``None`` without a
    label column) and, with ``pooled``, the attention-masked mean of its last hidden states (float32); eval mode and
    no gradient, the model's mode restored."""
    allowed, device = model_input_names(model), next(model.parameters()).device
    logits, labels, hidden, was_training = [], [], [], model.training
    model.eval()
    try:
        with torch.no_grad():
            for rows in iter_rows(dataset, np.arange(dataset_len(dataset)), batch_size):
                batch = send_to_device(collate([clean_row(r, allowed) for r in rows], data_collator), device)
                label = batch.pop("labels", batch.pop("label", None))
                out = model(**batch, output_hidden_states=pooled)
                logits.append(out.logits.double().cpu().numpy())
                labels.append(None if label is None else label.cpu().numpy())
                if pooled:
                    mask = batch["attention_mask"].unsqueeze(-1).to(out.hidden_states[-1].dtype)
                    hidden.append(((out.hidden_states[-1] * mask).sum(1) / mask.sum(1)).float().cpu().numpy())
    finally:
        model.train(was_training)
    return (np.concatenate(logits), None if labels[0] is None else np.concatenate(labels),
            np.concatenate(hidden) if pooled else None)
