"""The datasets handed to `UnlearningTrainer`: the right kind, disjoint, and τ's data held out.

Rows are compared by a hash of their input content (text, question+answer, image bytes, ``input_ids`` or
``pixel_values``), so copies are found whatever their ids. Messages carry counts and hashes only, never rows.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import torch

from .checks import CONTENT_COLUMNS

logger = logging.getLogger(__name__)

__all__ = ["check_held_out", "content_hashes", "dataset_digest", "drop_copies", "drop_shared"]

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


def check_held_out(forget: Any, retain: Any, validation: Any = None) -> None:
    """``ValueError`` when forget and retain share rows, or τ's validation rows are forget or retain rows."""
    keys = {name: content_hashes(d) for name, d in (("forget", forget), ("retain", retain),
                                                    ("validation", validation)) if d is not None}
    forget_keys, retain_keys = set(keys.get("forget") or ()), set(keys.get("retain") or ())
    if keys.get("retain") is not None and forget_keys:
        shared = sum(k in forget_keys for k in keys["retain"])
        if shared:
            raise ValueError(
                f"retain_dataset holds {shared} exact copies of forget rows (same inputs): training on them would "
                "teach the model what it must forget. Drop them: retain = hf_unlearn.data.drop_shared(retain, forget)."
            )
    if keys.get("validation") is not None:
        in_forget = sum(k in forget_keys for k in keys["validation"])
        in_retain = sum(k in retain_keys for k in keys["validation"])
        if in_forget or in_retain:
            raise ValueError(
                f"validation_dataset is not held out: {in_forget} of its {len(keys['validation'])} rows are forget "
                f"rows and {in_retain} are retain rows (same inputs); τ must be the loss on data the model never "
                "trained on. Pass a held-out split, or drop them: validation = hf_unlearn.data.drop_shared("
                "validation, forget, retain)."
            )


def drop_shared(dataset: Any, *others: Any) -> Any:
    """``dataset`` (a `datasets.Dataset` or a list of rows) without the rows whose inputs also appear in any of
    ``others`` (the count is logged)."""
    keys = content_hashes(dataset)
    if keys is None:
        raise ValueError("drop_shared needs a datasets.Dataset (or a list of rows) with input columns (text, "
                         "input_ids, image, ...).")
    taken = set().union(*(set(content_hashes(o) or ()) for o in others))
    keep = [i for i, k in enumerate(keys) if k not in taken]
    if len(keep) < len(keys):
        logger.warning("Dropped %d of %d rows whose inputs are copies of rows of another split.",
                       len(keys) - len(keep), len(keys))
        return dataset.select(keep) if isinstance(dataset, datasets.Dataset) else [dataset[i] for i in keep]
    return dataset


def drop_copies(forget: Any, retain: Any, validation: Any) -> tuple[Any, Any]:
    """``(retain, validation)`` without copies of forget rows (retain) and of training rows (validation), so that
    natural duplicates (the same short text twice in a corpus) pass `check_held_out`; non-`datasets` inputs and
    datasets without input columns are returned as they are."""
    if content_hashes(forget) is None:
        return retain, validation
    if content_hashes(retain) is not None:
        kept = drop_shared(retain, forget)
        retain = kept if len(kept) else retain  # all copies: leave it to check_held_out's error
    if validation is not None and content_hashes(validation) is not None:
        kept = drop_shared(validation, forget, retain)
        validation = kept if len(kept) else validation
    return retain, validation
