"""The datasets handed to `UnlearningTrainer`: forget and retain disjoint, and τ's data held out.

Rows are compared by `hf_unlearn.data.identity.content_hashes` (a hash of their input content), so copies are found
whatever their ids. Messages carry counts only, never rows.
"""

from __future__ import annotations

import logging
from typing import Any

import datasets

from .identity import content_hashes

logger = logging.getLogger(__name__)

__all__ = ["check_held_out", "drop_copies", "drop_shared"]


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
    return _without(dataset, keys, set().union(*(set(content_hashes(o) or ()) for o in others)))


def _without(dataset: Any, keys: list[str], taken: set[str]) -> Any:
    """``dataset`` without the rows whose key (``keys``, one per row) is in ``taken``."""
    keep = [i for i, k in enumerate(keys) if k not in taken]
    if len(keep) < len(keys):
        logger.warning("Dropped %d of %d rows whose inputs are copies of rows of another split.",
                       len(keys) - len(keep), len(keys))
        return dataset.select(keep) if isinstance(dataset, datasets.Dataset) else [dataset[i] for i in keep]
    return dataset


def drop_copies(forget: Any, retain: Any, validation: Any) -> tuple[Any, Any]:
    """``(retain, validation)`` without copies of forget rows (retain) and of training rows (validation), so that
    natural duplicates (the same short text twice in a corpus) pass `check_held_out`; non-`datasets` inputs and
    datasets without input columns are returned as they are. Each split is hashed once."""
    forget_keys = content_hashes(forget)
    if forget_keys is None:
        return retain, validation
    taken = set(forget_keys)
    retain_keys = content_hashes(retain)
    if retain_keys is not None:
        kept = _without(retain, retain_keys, taken)
        retain = kept if len(kept) else retain  # all copies: leave it to check_held_out's error
        taken |= set(retain_keys)  # the retain rows dropped above are forget rows: the same set
    validation_keys = None if validation is None else content_hashes(validation)
    if validation_keys is not None:
        kept = _without(validation, validation_keys, taken)
        validation = kept if len(kept) else validation
    return retain, validation
