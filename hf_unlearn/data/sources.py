"""Ready-made datasets, described as data (:class:`DatasetSpec`) and loaded by one function.

Each spec says where the data lives locally (a folder under the data dir, see
:func:`~hf_unlearn.data.loading.default_data_dir`) and on the Hub, how to read it and how
its columns map to the standard schema. :func:`load_source` uses the local files when they
exist (or when ``data_dir`` is given) and the Hub id otherwise; a dataset with a bundled sample (GoEmotions) falls
back to it when neither local files nor the Hub are available.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value, load_dataset
from sklearn.datasets import load_digits as sk_load_digits

from .. import io as hf_io
from .loading import default_data_dir, read_local_file, read_text_file, rename_to_standard

__all__ = [
    "SOURCES",
    "DatasetSpec",
    "bundled_sample_dir",
    "get_source",
    "load_digits",
    "load_goemotions",
    "load_mnist",
    "load_source",
    "load_tofu",
    "read_idx",
]


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives and how to bring it to the standard schema.

    ``local_files`` maps each split to its file (or files, for ``reader="idx"``) inside
    ``<data_dir>/<local_dir>``. ``hub_splits`` maps each split to ``(hub_config, hub_split)``.
    ``id_list_columns`` hold comma-separated label ids (e.g. ``"2,14"``) to parse into lists.
    """

    name: str
    task: str
    hub_id: str | None
    hub_splits: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)
    local_dir: str | None = None
    local_files: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    reader: str = "auto"
    reader_kwargs: Mapping[str, Any] = field(default_factory=dict)
    columns: Mapping[str, str] = field(default_factory=dict)
    keep_columns: tuple[str, ...] | None = None
    id_list_columns: tuple[str, ...] = ()
    label_column: str | None = None
    num_labels: int | None = None
    label_names_file: str | None = None
    sample_dir: str | None = None


logger = logging.getLogger(__name__)
_TOFU_SPLITS = ("forget01", "forget05", "forget10", "retain99", "retain95", "retain90")

SOURCES: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="goemotions",
            task="multi_label_classification",
            hub_id="google-research-datasets/go_emotions",
            hub_splits={s: ("simplified", s) for s in ("train", "validation", "test")},
            local_dir="goemotions",
            local_files={"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
            reader="tsv",
            reader_kwargs={"column_names": ["text", "labels", "id"], "dtype": str},
            keep_columns=("text", "labels", "id"),
            id_list_columns=("labels",),
            label_column="labels",
            num_labels=28,
            label_names_file="labels.txt",
            sample_dir="goemotions_sample",
        ),
        DatasetSpec(  # PolyAI's BANKING77 (CC-BY-4.0): 77 intents of short banking queries; train/test only
            name="banking77",
            task="text_classification",
            hub_id=None,  # local files only (fetched from PolyAI-LDN/task-specific-datasets: benchmarks/README.md)
            local_dir="banking77",
            local_files={"train": "train.csv", "test": "test.csv"},
            columns={"category": "label"},
            keep_columns=("text", "label"),
            label_column="label",
            num_labels=77,
        ),
        DatasetSpec(
            name="tofu",
            task="question_answering",
            hub_id="locuslab/TOFU",
            hub_splits={s: (s, "train") for s in _TOFU_SPLITS},
            local_dir="tofu",
            local_files={s: f"{s}.json" for s in _TOFU_SPLITS},
            reader="json",
            keep_columns=("question", "answer"),
            sample_dir="tofu_sample",  # forget10 + retain90 only
        ),
        DatasetSpec(
            name="mnist",
            task="image_classification",
            hub_id="ylecun/mnist",
            hub_splits={"train": ("mnist", "train"), "test": ("mnist", "test")},
            local_dir="mnist",
            local_files={"test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")},
            reader="idx",
            keep_columns=("image", "label"),
            label_column="label",
            num_labels=10,
        ),
    )
}


def bundled_sample_dir(name: str = "goemotions") -> Path:
    """The folder of the small sample of ``name`` shipped inside the package (same files as the full set).

    GoEmotions: 3,600 train / 700 dev / 700 test rows drawn at random (seed 0) from the original files, Apache-2.0
    (``LICENSE`` and ``README.md`` beside them). Enough for the demo; use the full set for real measurements.
    TOFU: the first 40 rows of forget10 (2 authors, with their answer variants) and 80 rows (4 authors) of retain90,
    MIT (``LICENSE`` beside them): enough for the causal-LM example's tiny run.
    """
    spec = get_source(name)
    if spec.sample_dir is None:
        raise ValueError(f"No bundled sample of '{name}'; datasets with one: "
                         f"{sorted(k for k, v in SOURCES.items() if v.sample_dir)}.")
    return Path(__file__).resolve().parent / spec.sample_dir


def get_source(name: str) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``name``."""
    if name not in SOURCES:
        raise ValueError(f"Unknown dataset '{name}'; registered: {sorted(SOURCES)}.")
    return SOURCES[name]


def read_idx(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> Dataset:
    """Read an MNIST-style idx image/label pair (optionally gzipped) as ``image`` (PIL) + ``label``."""

    def _read(path: Path) -> np.ndarray:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
        _, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if dtype_code != 0x08:
            raise ValueError(f"'{path}' is not an unsigned-byte idx file.")
        shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)

    images, labels = _read(Path(images_path)), _read(Path(labels_path))
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels in the idx files.")
    return _image_dataset(images, labels, [str(i) for i in range(10)])


def _image_dataset(images: np.ndarray, labels: np.ndarray, names: list[str]) -> Dataset:
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    return Dataset.from_dict({"image": list(images), "label": labels.astype(int).tolist()}, features=features)


def _resolve_local(spec: DatasetSpec, data_dir: str | os.PathLike | None, splits: list[str],
                   search_default_dir: bool = True) -> Path | None:
    """The folder holding the files of ``splits``, or None to use the Hub."""
    explicit = data_dir is not None
    if not explicit and not search_default_dir:
        return None
    root = Path(data_dir).expanduser() if explicit else default_data_dir()
    files = [_first(spec.local_files[s]) for s in splits if s in spec.local_files]
    if len(files) == len(splits) and files:
        for folder in ([root / spec.local_dir] if spec.local_dir else []) + [root]:
            if all((folder / f).is_file() for f in files):
                return folder
    if explicit:
        named = [spec.local_files.get(s, ()) for s in splits]
        expected = ", ".join(f for files in named for f in ([files] if isinstance(files, str) else files))
        inside = f" (or in '{root / spec.local_dir}')" if spec.local_dir else ""
        raise FileNotFoundError(
            f"No {spec.name} files in '{root}'{inside}: expected {expected or f'splits {splits}'}. Pass the folder "
            f"that holds them as data_dir (--data_dir), or leave it unset to use the Hub."
        )
    return None


def _first(files: str | tuple[str, ...]) -> str:
    return files if isinstance(files, str) else files[0]


def _read_split(spec: DatasetSpec, folder: Path, split: str) -> Dataset:
    files = spec.local_files[split]
    if spec.reader == "idx":
        return read_idx(*(folder / f for f in files))
    fmt = None if spec.reader == "auto" else spec.reader
    return read_local_file(folder / _first(files), fmt, **dict(spec.reader_kwargs))


def _parse_id_lists(ds: Dataset, spec: DatasetSpec, names: list[str] | None) -> Dataset:
    if not spec.id_list_columns:
        return ds
    feats = ds.features.copy()
    inner = ClassLabel(names=names) if names else Value("int64")
    for col in spec.id_list_columns:
        feats[col] = List(inner)

    def parse(batch: dict) -> dict:
        for col in spec.id_list_columns:
            batch[col] = [[int(x) for x in str(v).split(",") if x.strip()] for v in batch[col]]
        return batch

    return ds.map(parse, batched=True, features=feats)


def load_source(
    spec: DatasetSpec | str,
    data_dir: str | os.PathLike | None = None,
    *,
    splits: list[str] | None = None,
    hub_id: str | None = None,
    max_rows: int | None = None,
    search_default_dir: bool = True,
) -> DatasetDict:
    """Load ``splits`` (default: every split the spec knows) of a registered dataset.

    Local files are used when ``data_dir`` is given (FileNotFoundError if they are missing)
    or when the default data dir holds them (unless ``search_default_dir=False``); otherwise
    ``hub_id`` (default ``spec.hub_id``); when the Hub is unreachable too, the bundled sample
    (:func:`bundled_sample_dir`) if the dataset has one, with a warning.
    ``max_rows`` keeps the first rows of each split (for quick runs).
    """
    spec = get_source(spec) if isinstance(spec, str) else spec
    wanted = list(splits or spec.local_files or spec.hub_splits)
    folder = _resolve_local(spec, data_dir, wanted, search_default_dir)
    if folder is None and spec.sample_dir and all(s in spec.local_files for s in wanted):
        if not hf_io.hub_reachable(hub_id or spec.hub_id):
            folder = bundled_sample_dir(spec.name)
            logger.warning("No local %s files and the Hub is unreachable: using the bundled sample in %s.",
                           spec.name, folder)
    if folder is None and not splits and spec.hub_splits:
        wanted = list(spec.hub_splits)
    names = None
    if folder is not None:
        if spec.label_names_file and (folder / spec.label_names_file).is_file():
            names = read_text_file(folder / spec.label_names_file, "Label names file",
                                   "Save it as UTF-8, one label name per line.").split()
        parts = {s: _parse_id_lists(_read_split(spec, folder, s), spec, names) for s in wanted}
    else:
        repo = hub_id or spec.hub_id
        if repo is None:
            raise ValueError(f"{spec.name} has no Hub id and no local files were found.")
        unknown = [s for s in wanted if s not in spec.hub_splits]
        if unknown:
            raise ValueError(f"Unknown {spec.name} split(s) {unknown}; known: {list(spec.hub_splits)}.")
        parts = {s: load_dataset(repo, spec.hub_splits[s][0], split=spec.hub_splits[s][1]) for s in wanted}
    data = rename_to_standard(DatasetDict(parts), spec.columns)
    if spec.keep_columns:
        data = DatasetDict({k: v.select_columns(list(spec.keep_columns)) for k, v in data.items()})
    if max_rows is not None:
        data = DatasetDict({k: v.select(range(min(max_rows, len(v)))) for k, v in data.items()})
    return data


def load_goemotions(
    data_dir: str | os.PathLike | None = None,
    *,
    hub_id: str = "google-research-datasets/go_emotions",
    single_label: bool = False,
    max_rows: int | None = None,
    search_default_dir: bool = True,
) -> DatasetDict:
    """GoEmotions: train/validation/test with ``text``, ``labels`` (list of ids, 28 labels), ``id``.

    Label names are in the features: ``label_names(ds["train"])``.
    ``single_label=True`` keeps rows with exactly one label and gives an int ``label`` column.
    ``max_rows`` caps each split (applied after the single-label filter). Where the data comes from:
    :func:`load_source` (``data_dir``, the default data dir, the Hub, the bundled sample).
    """
    data = load_source("goemotions", data_dir, hub_id=hub_id, search_default_dir=search_default_dir)
    if single_label:
        data = DatasetDict({k: _to_single_label(v) for k, v in data.items()})
    if max_rows is not None:
        data = DatasetDict({k: v.select(range(min(max_rows, len(v)))) for k, v in data.items()})
    return data


def _to_single_label(ds: Dataset) -> Dataset:
    keep = np.flatnonzero([len(v) == 1 for v in ds.with_format(None)["labels"]])
    ds = ds.select(keep)
    feats = ds.features.copy()
    feats["label"] = feats.pop("labels").feature
    return ds.map(
        lambda b: {"label": [v[0] for v in b["labels"]]}, batched=True, remove_columns=["labels"],
        features=feats,
    )


def load_tofu(
    data_dir: str | os.PathLike | None = None,
    *,
    forget: str = "forget10",
    hub_id: str = "locuslab/TOFU",
    with_variants: bool = False,
) -> tuple[Dataset, Dataset]:
    """TOFU: ``(forget, retain)`` question/answer Datasets; forget01/05/10 pairs with retain99/95/90.

    ``with_variants`` keeps the forget rows' ``paraphrased_answer`` and ``perturbed_answer`` (a list of wrong
    answers), which TOFU's truth ratio and forget quality need (:mod:`hf_unlearn.audit.tofu`).
    """
    if forget not in ("forget01", "forget05", "forget10"):
        raise ValueError(f"forget must be 'forget01', 'forget05' or 'forget10', got {forget!r}.")
    retain = f"retain{100 - int(forget[-2:]):02d}"
    spec = get_source("tofu")
    if with_variants:
        spec = replace(spec, keep_columns=None)
    data = load_source(spec, data_dir, splits=[forget, retain], hub_id=hub_id)
    if with_variants:
        return (data[forget].select_columns(["question", "answer", "paraphrased_answer", "perturbed_answer"]),
                data[retain].select_columns(["question", "answer"]))
    return data[forget], data[retain]


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    split: str = "test",
    hub_id: str = "ylecun/mnist",
    max_rows: int | None = None,
) -> Dataset:
    """MNIST ``split`` with ``image`` (28×28 PIL, mode L) and ``label`` (ClassLabel 0–9).

    The shared data dir holds the 10,000-image test set; other splits come from the Hub.
    """
    return load_source("mnist", data_dir, splits=[split], hub_id=hub_id, max_rows=max_rows)[split]


def load_digits(*, max_rows: int | None = None) -> Dataset:
    """scikit-learn's 1,797 8×8 digits as ``image`` (PIL, mode L, 0–255) and ``label`` (0–9)."""
    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    ds = _image_dataset(images, bunch.target, [str(i) for i in range(10)])
    return ds.select(range(min(max_rows, len(ds)))) if max_rows is not None else ds
