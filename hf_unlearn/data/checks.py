"""Safety checks on data splits: disjointness, shared content, required columns.

Messages and logs carry counts and column names only, never row content, ids or labels.
Nothing here writes to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from datasets import Dataset, DatasetDict, Image, IterableDataset, IterableDatasetDict

from ..masking import count_unsupervised
from .identity import CONTENT_COLUMNS, content_hashes

logger = logging.getLogger(__name__)

__all__ = [
    "CONTENT_COLUMNS",
    "check_dataset_kind",
    "check_disjoint",
    "content_columns",
    "count_shared",
    "require_columns",
    "row_keys",
]

def require_columns(dataset: Dataset, columns: Iterable[str], what: str = "dataset") -> None:
    """Raise ValueError naming the missing columns and the ones that exist."""
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"Column(s) {missing} not found in the {what}; it has columns {dataset.column_names}. "
            "Rename them (load_data(columns={...})) or pass the right column name."
        )


def content_columns(dataset: Dataset) -> tuple[str, ...]:
    """The input fields used to recognise identical rows (text, question+answer, image...)."""
    for cols in CONTENT_COLUMNS:
        if all(c in dataset.column_names for c in cols):
            return cols
    raise ValueError(
        f"Cannot tell which columns hold the inputs; the dataset has columns {dataset.column_names}. "
        f"Pass columns=[...] (expected one of {[list(c) for c in CONTENT_COLUMNS]})."
    )


def row_keys(dataset: Dataset, columns: Sequence[str]) -> list[str]:
    """One key per row: the value itself for a single id-like column, else the row's content hash
    (`hf_unlearn.data.identity.content_hashes`, the one row hasher)."""
    require_columns(dataset, columns)
    if len(columns) == 1:
        feature = dataset.features.get(columns[0])
        if not (isinstance(feature, Image) and feature.decode):
            values = list(dataset.select_columns(list(columns)).with_format(None)[columns[0]])
            if all(isinstance(v, (str, int)) for v in values) and not any(
                    isinstance(v, str) and len(v) > 64 for v in values):
                return [str(v) for v in values]
    return content_hashes(dataset, columns)


def _key_columns(a: Dataset, bs: Sequence[Dataset], columns: Sequence[str] | None,
                 id_column: str | None) -> list[str]:
    if columns:
        return list(columns)
    if id_column is not None:
        return [id_column]
    if all("id" in d.column_names for d in (a, *bs)):
        return ["id"]
    cols = {content_columns(d) for d in (a, *bs)}
    if len(cols) != 1:
        raise ValueError(
            f"The datasets hold different inputs ({[list(c) for c in cols]}); pass columns=[...] to compare them."
        )
    return list(cols.pop())


def check_disjoint(
    a: Dataset,
    b: Dataset | Sequence[Dataset],
    columns: Sequence[str] | None = None,
    *,
    id_column: str | None = None,
    names: tuple[str, str] = ("first", "second"),
) -> None:
    """Raise ValueError if ``a`` and ``b`` share rows, naming how many (never which).

    ``b`` may be several datasets (e.g. forget and retain, together the training data).
    Rows are matched by ``columns`` if given, else by ``id_column`` (or an ``id`` column present
    in all), else by a hash of the input fields (text / question+answer / image bytes /
    input_ids / pixel_values).
    """
    bs = [b] if isinstance(b, Dataset) else list(b)
    cols = _key_columns(a, bs, columns, id_column)
    keys_b = set().union(*(row_keys(d, cols) for d in bs))
    shared = sum(k in keys_b for k in row_keys(a, cols))
    if shared:
        raise ValueError(
            f"The {names[0]} set ({len(a)} rows) and the {names[1]} set ({sum(map(len, bs))} rows) share "
            f"{shared} row(s) (matched by {cols}). They must be disjoint: remove the shared rows "
            f"from one of them, or pass an id column that tells distinct rows apart."
        )


def count_shared(
    forget: Dataset, retain: Dataset, columns: Sequence[str] | None = None, *, warn: bool = True
) -> int:
    """Number of ``forget`` rows whose input content also appears in ``retain``.

    Duplicated texts with different ids are legitimate (not an error), but the model keeps
    seeing a forgotten text through ``retain``; a logging warning gives the count.
    """
    cols = list(columns) if columns else list(content_columns(forget))
    if not all(c in retain.column_names for c in cols) or len(forget) == 0 or len(retain) == 0:
        return 0
    keys_r = set(row_keys(retain, cols))
    shared = sum(k in keys_r for k in row_keys(forget, cols))
    if shared and warn:
        logger.warning(
            "%d forget row(s) have the same %s as a retain row (different ids); the retain copies "
            "will keep being trained on. Drop them from retain if they should be forgotten too.",
            shared,
            "+".join(cols),
        )
    return shared


def check_dataset_kind(dataset: Any, name: str) -> None:
    """``ValueError`` for a streamed ``IterableDataset`` or a ``DatasetDict`` (the trainer needs one sized split)."""
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        splits = list(dataset)
        example = splits[0] if splits else "train"
        raise ValueError(
            f"{name} is a {type(dataset).__name__} with splits {splits}; pass one split, e.g. "
            f"{name}=data[{example!r}]."
        )
    if isinstance(dataset, (IterableDataset, torch.utils.data.IterableDataset)):
        raise ValueError(
            f"{name} is an IterableDataset (streamed): pairing forget and retain rows needs its length and random "
            "access. Load it with streaming=False, or materialise it (datasets.Dataset.from_list(list(ds)))."
        )


def check_forget_retain(forget, retain) -> None:
    """The trainer's cheap input checks: both given, sized datasets, not the same object, neither empty."""
    if forget is None or retain is None:
        raise ValueError("Pass both forget_dataset (the data to remove) and retain_dataset (the data to keep).")
    check_dataset_kind(forget, "forget_dataset")
    check_dataset_kind(retain, "retain_dataset")
    if forget is retain:
        raise ValueError(
            "forget_dataset and retain_dataset are the same object; split the training data into disjoint forget "
            "and retain sets (hf_unlearn.data.select_forget does it)."
        )
    if len(forget) == 0:
        raise ValueError("forget_dataset is empty: there is nothing to unlearn. Check the forget selection.")
    if len(retain) == 0:
        raise ValueError("retain_dataset is empty: every step pairs forget samples with retain samples.")


def is_class_removal(forget, retain) -> bool:
    """True when no single-label class of the forget set appears in the retain set (a class-removal request)."""
    if not (isinstance(forget, datasets.Dataset) and isinstance(retain, datasets.Dataset)):
        return False
    column = next((c for c in ("labels", "label") if c in forget.column_names and c in retain.column_names), None)
    if column is None:
        return False
    forget_labels = forget.with_format(None)[column]
    if not forget_labels or not all(isinstance(v, int) for v in forget_labels):
        return False
    return not set(forget_labels) & set(retain.with_format(None)[column])


def check_model_inputs(dataset, *, name: str, num_labels: int | None = None, vocab_size: int | None = None,
                       task: str | None = None, max_rows: int = 2000, config: Any = None) -> None:
    """Labels inside the model's head, token ids inside its vocabulary, rows with tokens and within the model's
    positions, and (causal LM) forget / validation rows with a supervised token (errors name the fix).

    Checks a `datasets.Dataset` (a list of row mappings is checked as one; other datasets are passed through), every
    row (``max_rows`` is kept for older callers and ignored).
    """
    check_dataset_kind(dataset, name)
    if isinstance(dataset, (list, tuple)) and dataset and all(isinstance(r, Mapping) for r in dataset):
        try:
            dataset = datasets.Dataset.from_list([{k: _plain(v) for k, v in r.items()} for r in dataset])
        except Exception:  # rows arrow cannot hold: not checked here
            return
    if not isinstance(dataset, datasets.Dataset) or len(dataset) == 0:
        return
    check_token_rows(dataset, name=name, config=config, task=task)
    column = next((c for c in ("labels", "label") if c in dataset.column_names), None)
    if column is not None and task in ("single_label", "image_classification") and num_labels:
        labels = dataset.with_format(None)[column]
        if any(not isinstance(v, int) or isinstance(v, bool) for v in labels):
            kind = type(next(v for v in labels if not isinstance(v, int) or isinstance(v, bool))).__name__
            raise ValueError(
                f"{name}: the '{column}' column holds {kind} values; single-label classification needs integer class "
                "ids. Encode the labels (datasets.ClassLabel, or hf_unlearn.data.tokenize_classification)."
            )
        bad = sum(1 for v in labels if not 0 <= v < num_labels)
        if bad:
            raise ValueError(
                f"{name}: {bad} rows have a label outside the model's head (0..{num_labels - 1}). Load the model "
                f"with num_labels covering every class, or drop those rows."
            )
    if column is not None and task == "multi_label" and num_labels:
        widths = np.asarray(pc.list_value_length(dataset.with_format("arrow")[column]).to_numpy(zero_copy_only=False))
        bad = widths != num_labels
        if bad.any():
            raise ValueError(
                f"{name}: {int(bad.sum())} rows have a multi-label vector of {int(widths[bad][0])} values, the model "
                f"has {num_labels} labels. Give every row {num_labels} 0/1 values (one per class), or load the "
                "model with num_labels matching the data."
            )
    if vocab_size and "input_ids" in dataset.column_names:
        low, high = token_range(dataset)
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"{name}: token id {low if low < 0 else high} is outside the model's vocabulary (0..{vocab_size - 1}): "
                "the data was tokenized with a different tokenizer than the model's. Re-tokenize with the model's "
                "tokenizer."
            )


def token_range(dataset: Dataset) -> tuple[int, int]:
    """The lowest and highest token id in ``input_ids``, over every row."""
    column = dataset.with_format("arrow")["input_ids"]
    try:
        flat = pc.list_flatten(column)
        while hasattr(flat.type, "value_type"):  # nested lists
            flat = pc.list_flatten(flat)
        found = pc.min_max(flat).as_py()
    except Exception:  # an unusual layout: read the rows
        values = [v for ids in dataset.with_format(None)["input_ids"] for v in np.ravel(ids)]
        found = {"min": min(values, default=0), "max": max(values, default=-1)}
    return int(found["min"] if found["min"] is not None else 0), int(found["max"] if found["max"] is not None else -1)


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def check_token_rows(dataset: Dataset, *, name: str, config: Any = None, task: str | None = None) -> None:
    """Every row has tokens and fits the model's positions; causal-LM forget and validation rows supervise a token."""
    if "input_ids" in dataset.column_names:
        lengths = np.asarray(pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_numpy(
            zero_copy_only=False))
        empty = int((lengths == 0).sum())
        if empty:
            raise ValueError(
                f"{name}: {empty} rows have no tokens (empty input_ids). Drop them, e.g. "
                f"{name}.filter(lambda row: len(row['input_ids']) > 0)."
            )
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        too_long = int((lengths > limit).sum()) if isinstance(limit, int) else 0
        if too_long:
            raise ValueError(
                f"{name}: {too_long} rows are longer than the model's max_position_embeddings={limit} (longest "
                f"{int(lengths.max())} tokens). Tokenize with truncation=True, max_length={limit} (or less)."
            )
    if task == "causal_lm" and "labels" in dataset.column_names and name in ("forget_dataset", "validation_dataset"):
        labels = dataset.with_format(None)["labels"]
        if labels and not isinstance(labels[0], (list, tuple)):
            raise ValueError(
                f"{name}: a causal LM needs token labels (one list per row, -100 where no loss), not one "
                f"{type(labels[0]).__name__} per row. For class labels use a sequence-classification model; for "
                "text, build the labels with hf_unlearn.data.tokenize_qa."
            )
        masked = count_unsupervised(labels)
        if masked:
            use = "to unlearn" if name == "forget_dataset" else "for τ"
            raise ValueError(
                f"{name}: {masked} of {len(dataset)} rows have every label -100 (no supervised token), so their loss "
                f"is undefined and they carry nothing {use}. Drop them, or keep the answer tokens when truncating "
                "(hf_unlearn.data.tokenize_qa keeps at least one)."
            )
