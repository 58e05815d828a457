"""A row's identity: the one row hasher (`content_hashes`) and the dataset digest built on it (`dataset_digest`).

Rows are identified by a hash of their input content (text, question+answer, image bytes, ``input_ids`` without
padding, or ``pixel_values``), so copies are found whatever their ids, and the same token ids hash alike whether
stored as int32 or int64 (Python lists, numpy arrays or tensors). `hf_unlearn.data.checks` (disjoint splits),
`hf_unlearn.data.holdout` (held-out checks) and the digests in job.json and the model cache all use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import torch

__all__ = ["CONTENT_COLUMNS", "content_hashes", "dataset_digest"]

#: Input fields that identify a row's content, by task, in order of preference.
CONTENT_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("text",),
    ("question", "answer"),
    ("image",),
    ("input_ids",),
    ("pixel_values",),
)

_BATCH = 1024


def _content_columns(dataset: Any) -> list[str] | None:
    names = _column_names(dataset) or ()
    for cols in CONTENT_COLUMNS:
        if all(c in names for c in cols):
            return list(cols)
    return None


def _row_list(dataset: Any) -> bool:
    """A Python list (or map-style torch dataset) of row mappings: compared like a `datasets.Dataset`."""
    if not isinstance(dataset, (list, tuple, torch.utils.data.Dataset)) or isinstance(dataset, datasets.Dataset):
        return False
    try:
        return len(dataset) > 0 and isinstance(dataset[0], Mapping)
    except (TypeError, IndexError, KeyError, NotImplementedError):
        return False


def _column_names(dataset: Any) -> list[str] | None:
    if isinstance(dataset, datasets.Dataset):
        return dataset.column_names
    return list(dataset[0]) if _row_list(dataset) else None


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):  # an undecoded image: {"bytes": ..., "path": ...}
        return value.get("bytes") or str(value.get("path")).encode("utf-8")
    array = np.asarray(value)
    if array.dtype == object:
        return b"\x1e".join(_bytes(v) for v in array)
    if array.dtype.kind in "iub":  # the same token ids hash alike whether stored as int32 or int64
        array = array.astype(np.int64)
    return np.ascontiguousarray(array).tobytes() + str(array.shape).encode()


def _unpadded(ids: Any, mask: Any) -> Any:
    """The tokens the model attends to: a row padded with extra pad tokens hashes as the row itself."""
    ids, mask = np.asarray(ids), np.asarray(mask)
    return ids[mask != 0] if ids.shape == mask.shape else ids


def _rows(dataset: Any, columns: list[str]):
    """Batches of ``{column: values}`` of a `datasets.Dataset` or a list of rows."""
    if isinstance(dataset, datasets.Dataset):
        view = dataset.select_columns(columns)
        for column, feature in view.features.items():
            if isinstance(feature, datasets.Image) and feature.decode:
                view = view.cast_column(column, datasets.Image(decode=False))  # raw bytes, no decoding
        view = view.with_format("numpy")
        for start in range(0, len(view), _BATCH):
            yield view[start:start + _BATCH]
    else:
        rows = [dataset[i] for i in range(len(dataset))]
        yield {c: [row[c] for row in rows] for c in columns}


def content_hashes(dataset: Any, columns: Sequence[str] | None = None) -> list[str] | None:
    """One blake2b digest per row of ``columns`` (default: the input columns; token ids without their padding);
    ``None`` when the rows cannot be read as a `datasets.Dataset` or a list of row mappings with known input
    columns (other datasets are not compared)."""
    names = _column_names(dataset)
    if names is None:
        return None
    columns = list(columns) if columns else _content_columns(dataset)
    if not columns or any(c not in names for c in columns):
        return None
    mask = "attention_mask" if "input_ids" in columns and "attention_mask" in names else None
    hashes = []
    for batch in _rows(dataset, columns + ([mask] if mask and mask not in columns else [])):
        for i in range(len(batch[columns[0]])):
            h = hashlib.blake2b(digest_size=16)
            for column in columns:
                value = batch[column][i]
                h.update(_bytes(_unpadded(value, batch[mask][i]) if mask and column == "input_ids" else value))
                h.update(b"\x1f")
            hashes.append(h.hexdigest())
    return hashes


def dataset_digest(dataset: Any) -> str | None:
    """A digest of a dataset's rows (inputs and labels, in any order): equal for the same rows, else different.
    A `datasets.Dataset` or a list of row mappings; ``None`` for other datasets."""
    names = _column_names(dataset)
    if names is None:
        return None
    label = [c for c in ("labels", "label") if c in names][:1]
    inputs = _content_columns(dataset)
    rows = content_hashes(dataset, (inputs or [c for c in names if c not in label]) + label)
    if rows is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    for row in sorted(rows):
        h.update(row.encode())
    return h.hexdigest()
