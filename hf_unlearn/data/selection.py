"""Choose the forget set: a random fraction, whole classes, listed ids or a predicate.

Selections are seeded and reproducible, keep the original row order, and never write to
disk (``Dataset.select`` keeps an in-memory index). Errors and logs give counts only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict

from .checks import check_disjoint, count_shared, require_columns
from .loading import read_text_file
from .sampling import seeded_permutation

logger = logging.getLogger(__name__)

__all__ = ["UnlearningSplits", "label_names", "make_splits", "read_ids", "select_forget", "splits_from"]


def read_ids(path: str | os.PathLike) -> list[str]:
    """Read a deletion request: one id per line; blank lines and ``#`` comments are skipped."""
    text = read_text_file(path, "Id file", "Pass a file with one id per line.")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def label_names(dataset: Dataset | DatasetDict, column: str | None = None) -> list[str] | None:
    """Label names: those of a ``ClassLabel`` (or list-of-ClassLabel) feature; for a column of strings (e.g.
    "ham"/"spam") the sorted distinct values, over every split of a ``DatasetDict``, which is the id order
    :func:`~hf_unlearn.data.tokenize_classification` gives them; else None."""
    if isinstance(dataset, DatasetDict):
        parts = [part for part in dataset.values() if column is None or column in part.column_names]
        if not parts:
            return None
        names = label_names(parts[0], column)
        if names is not None and _is_string_column(parts[0], column or _label_column(parts[0], None)):
            names = sorted({name for part in parts for name in label_names(part, column) or []})
        return names
    column = column or _label_column(dataset, None)
    feature = dataset.features.get(column)
    if _is_string_column(dataset, column):
        return sorted({str(v) for v in dataset[column]})
    if isinstance(feature, list) and feature:
        feature = feature[0]
    feature = getattr(feature, "feature", feature)  # List(ClassLabel) / Sequence(ClassLabel)
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def _is_string_column(dataset: Dataset, column: str) -> bool:
    return getattr(dataset.features.get(column), "dtype", None) in ("string", "large_string")


def _label_column(dataset: Dataset, label_column: str | None) -> str:
    if label_column is not None:
        require_columns(dataset, [label_column])
        return label_column
    for col in ("label", "labels"):
        if col in dataset.column_names:
            return col
    raise ValueError(
        f"No 'label' or 'labels' column; the dataset has columns {dataset.column_names}. "
        "Pass label_column=..."
    )


def class_ids(classes: Iterable[int | str] | int | str, names: Sequence[str] | None) -> list[int]:
    """The label ids of ``classes`` (ids, or names looked up with `ClassLabel.str2int`), in the order given;
    ``ValueError`` naming the valid ids or names for one that is not a class."""
    ids: list[int] = []
    labels = ClassLabel(names=list(names)) if names is not None else None
    for c in [classes] if isinstance(classes, (str, int)) else classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if names is not None and not 0 <= int(c) < len(names):
                raise ValueError(f"Unknown class id {c}: valid ids are 0..{len(names) - 1}.")
            ids.append(int(c))
        elif labels is not None and c in names:
            ids.append(labels.str2int(c))
        else:
            hint = f"valid names: {list(names)}" if names is not None else (
                "the label column has no names: pass label ids or label_names=[...]"
            )
            raise ValueError(f"Unknown class {c!r}; {hint}.")
    return ids


def _forget_mask(
    dataset: Dataset,
    *,
    fraction: float | None,
    classes: Iterable[int | str] | None,
    ids: Iterable[Any] | str | os.PathLike | None,
    where: Callable[[dict], bool] | None,
    label_column: str | None,
    id_column: str | None,
    label_names_: Sequence[str] | None,
    seed: int,
    missing_ids: str,
) -> np.ndarray:
    n = len(dataset)
    mask = np.zeros(n, dtype=bool)
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}; e.g. fraction=0.1 forgets 10%.")
        k = round(fraction * n)
        mask[seeded_permutation(n, seed)[:k].numpy()] = True
    elif classes is not None:
        col = _label_column(dataset, label_column)
        wanted = set(class_ids(classes, label_names_ or label_names(dataset, col)))
        values = dataset.select_columns([col]).with_format(None)[col]
        for i, v in enumerate(values):
            row = v if isinstance(v, list) else [v]
            mask[i] = any(int(x) in wanted for x in row)
    elif ids is not None:
        if id_column is None:
            raise ValueError("Selecting by ids needs id_column=<column holding the ids>.")
        require_columns(dataset, [id_column])
        requested = set(read_ids(ids) if isinstance(ids, (str, os.PathLike)) else (str(i) for i in ids))
        column = dataset.select_columns([id_column]).with_format(None)[id_column]
        found: set[str] = set()
        for i, v in enumerate(column):
            if str(v) in requested:
                mask[i] = True
                found.add(str(v))
        missing = len(requested) - len(found)
        if missing:
            msg = f"{missing} of {len(requested)} requested id(s) were not found in column '{id_column}'"
            if missing_ids == "error":
                raise ValueError(
                    f"{msg} (ids not shown). Check id_column and the id file, or pass "
                    "missing_ids='warn' to forget the ids that were found."
                )
            if missing_ids == "warn":
                logger.warning("%s; forgetting the %d that were found.", msg, len(found))
    else:
        assert where is not None
        for i, row in enumerate(dataset):
            mask[i] = bool(where(row))
    return mask


def select_forget(
    dataset: Dataset,
    *,
    fraction: float | None = None,
    classes: Iterable[int | str] | None = None,
    ids: Iterable[Any] | str | os.PathLike | None = None,
    where: Callable[[dict], bool] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    label_names: Sequence[str] | None = None,
    seed: int = 0,
    missing_ids: Literal["error", "warn", "ignore"] = "error",
    check_duplicates: bool = True,
) -> tuple[Dataset, Dataset]:
    """Split ``dataset`` into ``(forget, retain)`` with exactly one selector.

    * ``fraction``: ``round(fraction * len(dataset))`` random rows (seeded by ``seed``).
    * ``classes``: rows whose label is in ``classes`` (for a list column: any label); names or
      ids; names come from the ``ClassLabel`` feature or ``label_names``. ``label_column``
      defaults to ``label``, else ``labels``.
    * ``ids``: ids (or a path to a file with one id per line) matched in ``id_column``;
      requested ids that are missing raise (``missing_ids="error"``) or are counted in a warning.
    * ``where``: a predicate ``row -> bool``.

    Both parts keep the original order. An empty forget set or one covering all rows raises.
    With ``check_duplicates``, forget rows whose input also appears in retain are counted
    (see :func:`count_shared`).
    """
    chosen = [name for name, v in (("fraction", fraction), ("classes", classes), ("ids", ids),
                                   ("where", where)) if v is not None]
    if len(chosen) != 1:
        raise ValueError(
            f"Pass exactly one of fraction=, classes=, ids=, where= (got {chosen or 'none'})."
        )
    if missing_ids not in ("error", "warn", "ignore"):
        raise ValueError(f"missing_ids must be 'error', 'warn' or 'ignore', got {missing_ids!r}.")
    mask = _forget_mask(
        dataset, fraction=fraction, classes=classes, ids=ids, where=where, label_column=label_column,
        id_column=id_column, label_names_=label_names, seed=seed, missing_ids=missing_ids,
    )
    n_forget = int(mask.sum())
    if n_forget == 0:
        raise ValueError(
            f"The forget set is empty (selector {chosen[0]} matched no row of {len(dataset)}). "
            "Check the selector, the label/id column, or use a larger fraction."
        )
    if n_forget == len(dataset):
        raise ValueError(
            f"The forget set would be all {len(dataset)} rows, leaving nothing to retain. "
            "Narrow the selector (fewer classes/ids or a smaller fraction)."
        )
    forget = dataset.select(np.flatnonzero(mask))
    retain = dataset.select(np.flatnonzero(~mask))
    logger.info("Selected %d forget and %d retain rows by %s.", len(forget), len(retain), chosen[0])
    if check_duplicates:
        try:
            count_shared(forget, retain)
        except ValueError:  # no recognisable input columns: nothing to compare
            pass
    return forget, retain


@dataclass
class UnlearningSplits:
    """The four parts of an unlearning job.

    ``forget`` and ``retain`` are training data; ``validation`` is held-out data (never trained
    on) used to estimate τ; ``test`` is held out for evaluation and the audit (optional).
    """

    forget: Dataset
    retain: Dataset
    validation: Dataset
    test: Dataset | None = None

    def sizes(self) -> dict[str, int]:
        """Row counts per part (the only thing safe to log)."""
        parts = {"forget": self.forget, "retain": self.retain, "validation": self.validation}
        if self.test is not None:
            parts["test"] = self.test
        return {k: len(v) for k, v in parts.items()}

    def __repr__(self) -> str:
        return f"UnlearningSplits({', '.join(f'{k}={v}' for k, v in self.sizes().items())})"


def splits_from(
    forget: Dataset,
    retain: Dataset,
    *,
    validation: Dataset | None = None,
    test: Dataset | None = None,
    validation_size: float | int | None = None,
    id_column: str | None = None,
    seed: int = 0,
    check_forget_retain: bool = True,
) -> UnlearningSplits:
    """Bundle and check a forget/retain pair; carve ``validation_size`` out of retain if needed.

    Raises ValueError if forget and retain overlap (``check_forget_retain``), if a given
    validation or test set overlaps the training data (forget + retain), or if there is no
    held-out validation data. A validation set carved out of retain is disjoint by row; rows
    that merely repeat a training input are counted in a warning instead.
    """
    if len(forget) == 0:
        raise ValueError("The forget set is empty; select at least one row to forget.")
    if len(retain) == 0:
        raise ValueError("The retain set is empty; unlearning needs data to retain.")
    if check_forget_retain:
        check_disjoint(forget, retain, id_column=id_column, names=("forget", "retain"))
    carved = validation is None
    if validation is None:
        if validation_size is None:
            raise ValueError(
                "No held-out validation data (needed for τ). Pass validation=..., a DatasetDict with "
                "a 'validation' split, or validation_size=0.1 to hold out part of retain."
            )
        n = round(validation_size * len(retain)) if isinstance(validation_size, float) else validation_size
        if not 0 < n < len(retain):
            raise ValueError(
                f"validation_size={validation_size} gives {n} of {len(retain)} retain rows; "
                "use a fraction in (0, 1) or a count smaller than retain."
            )
        order = seeded_permutation(len(retain), seed).numpy()
        validation = retain.select(np.sort(order[:n]))
        retain = retain.select(np.sort(order[n:]))
    for name, part in (("validation", validation), ("test", test)):
        if part is None:
            continue
        if name == "validation" and carved:
            for train_name, train in (("forget", forget), ("retain", retain)):
                _warn_shared(part, train, name, train_name)
        else:
            check_disjoint(part, [forget, retain], id_column=id_column, names=(name, "training (forget + retain)"))
    return UnlearningSplits(forget=forget, retain=retain, validation=validation, test=test)


def _warn_shared(part: Dataset, train: Dataset, name: str, train_name: str) -> None:
    try:
        shared = count_shared(part, train, warn=False)
    except ValueError:
        return
    if shared:
        logger.warning("%d %s row(s) repeat the input of a %s row.", shared, name, train_name)


def make_splits(
    data: Dataset | DatasetDict,
    *,
    fraction: float | None = None,
    classes: Iterable[int | str] | None = None,
    ids: Iterable[Any] | str | os.PathLike | None = None,
    where: Callable[[dict], bool] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    label_names: Sequence[str] | None = None,
    seed: int = 0,
    validation: Dataset | None = None,
    test: Dataset | None = None,
    validation_size: float | int | None = None,
    train_split: str = "train",
    missing_ids: Literal["error", "warn", "ignore"] = "error",
) -> UnlearningSplits:
    """Select the forget set from the training data and return checked :class:`UnlearningSplits`.

    ``data`` is the training Dataset, or a DatasetDict whose ``train_split`` is used for
    training and whose ``validation``/``test`` splits (if present and not given explicitly)
    are used as held-out data. Otherwise ``validation_size`` is held out of retain (so forget
    rows never serve as validation).
    """
    if isinstance(data, DatasetDict):
        if train_split not in data:
            raise ValueError(f"Split '{train_split}' not found; available splits: {list(data)}.")
        validation = validation if validation is not None else data.get("validation")
        test = test if test is not None else data.get("test")
        data = data[train_split]
    forget, retain = select_forget(
        data, fraction=fraction, classes=classes, ids=ids, where=where, label_column=label_column,
        id_column=id_column, label_names=label_names, seed=seed, missing_ids=missing_ids,
    )
    return splits_from(
        forget, retain, validation=validation, test=test, validation_size=validation_size,
        id_column=id_column, seed=seed, check_forget_retain=False,  # disjoint by construction
    )


def seeded_order(n: int, seed: int) -> list[int]:
    """:func:`~hf_unlearn.data.sampling.seeded_permutation` as a list: the rows `sample_rows` keeps are its first
    ones, and the job pipeline's held-out validation/test rows are taken from it."""
    return seeded_permutation(n, seed).tolist()


def sample_rows(dataset: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A seeded random sample of ``n`` rows (all rows when ``n`` is 0/None or at least the dataset size): the one row
    sampler's draw for datasets (data sampling, τ rows, the audit's retain rows). Map-style torch datasets too."""
    if not n or n >= len(dataset):
        return dataset
    order = seeded_order(len(dataset), seed)[:n]
    return dataset.select(order) if hasattr(dataset, "select") else torch.utils.data.Subset(dataset, order)
