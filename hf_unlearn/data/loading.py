"""Load a dataset from the Hugging Face Hub or from local files, in the standard schema.

Standard column names used across hf-unlearn:

* text classification: ``text`` and ``label`` (int) or ``labels`` (list of label ids)
* question answering / causal LM: ``question`` and ``answer``
* image classification: ``image`` and ``label``

Local files are read into memory (no cache copy is written next to them or under
``~/.cache``), so nothing of a forget set leaves memory unless the caller saves it.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict, Features, Value

__all__ = [
    "read_text_file",
    "LOCAL_FORMATS",
    "default_data_dir",
    "load_data",
    "read_local_file",
    "rename_to_standard",
    "slice_split",
]

#: File extensions read locally, mapped to the reader used.
LOCAL_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
}

DATA_DIR_ENV = "HF_UNLEARN_DATA_DIR"


def default_data_dir() -> Path:
    """The shared data folder: ``$HF_UNLEARN_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data"


def read_local_file(path: str | os.PathLike, fmt: str | None = None, **kw: Any) -> Dataset:
    """Read one csv/tsv/json/jsonl/parquet file into an in-memory :class:`Dataset`.

    ``column_names=[...]`` reads a header-less csv/tsv; other keywords go to
    :func:`pandas.read_csv` (csv/tsv). ``field="data"`` picks a list inside a JSON object.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: '{path}'. Check the path or set {DATA_DIR_ENV}.")
    fmt = fmt or LOCAL_FORMATS.get(path.suffix.lower())
    if fmt in ("csv", "tsv"):
        names = kw.pop("column_names", None)
        options: dict[str, Any] = {"sep": "\t" if fmt == "tsv" else ",", "keep_default_na": False,
                                   "encoding": "utf-8-sig"}
        if fmt == "tsv":
            options["quoting"] = csv.QUOTE_NONE
        if names is not None:
            options.update(header=None, names=list(names))
        options.update(kw)
        try:
            frame = pd.read_csv(path, **options)
        except UnicodeDecodeError as err:
            raise ValueError(f"Data file '{path}' is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                             f"{err.start}); save it as UTF-8.") from None
        ds = Dataset.from_pandas(frame, preserve_index=False)
        large = [k for k, f in ds.features.items() if getattr(f, "dtype", None) == "large_string"]
        return ds.cast(Features({**ds.features, **{k: Value("string") for k in large}})) if large else ds
    if fmt == "parquet":
        return Dataset(pq.read_table(path, **kw))
    if fmt in ("json", "jsonl"):
        return Dataset.from_list(_read_json_records(path, fmt, field=kw.pop("field", None)))
    raise ValueError(
        f"Cannot read '{path}': unknown file type '{path.suffix}'. "
        f"Use one of {sorted(LOCAL_FORMATS)} or a folder written by save_to_disk."
    )


def read_text_file(path: str | os.PathLike, what: str, fix: str) -> str:
    """The UTF-8 text of a file; ``FileNotFoundError`` (missing, or a folder) / ``ValueError`` (not UTF-8) naming
    the file, ``what`` it should be and the ``fix``."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise FileNotFoundError(f"{what} '{p}' is a folder, not a file. {fix}")
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: '{p}'. {fix}")
    try:
        return p.read_bytes().decode("utf-8-sig")  # a byte-order mark (Windows editors) is not part of the text
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} '{p}' is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                         f"{err.start}); save it as UTF-8.") from None


def _read_json_records(path: Path, fmt: str, field: str | None) -> list[dict]:
    text = read_text_file(path, "Data file", "Pass a JSON / JSON-lines file.")
    if fmt == "json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None  # probably JSON lines saved as .json
        if obj is not None:
            if field is not None:
                obj = obj[field]
            elif isinstance(obj, dict):
                lists = [k for k, v in obj.items() if isinstance(v, list)]
                if len(lists) != 1:
                    raise ValueError(
                        f"'{path}' holds a JSON object; pass field=<key> to pick the list of records "
                        f"(keys: {sorted(obj)})."
                    )
                obj = obj[lists[0]]
            if not isinstance(obj, list):
                raise ValueError(f"'{path}' must hold a JSON array of objects (or JSON lines).")
            return obj
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def rename_to_standard(
    data: Dataset | DatasetDict, columns: Mapping[str, str] | None
) -> Dataset | DatasetDict:
    """Rename ``{"source_col": "standard_col"}``; ValueError names the columns that exist."""
    if not columns:
        return data
    parts = data.values() if isinstance(data, (DatasetDict, datasets.IterableDatasetDict)) else [data]
    for part in parts:
        if part.column_names is None:  # streaming without known features
            continue
        missing = [c for c in columns if c not in part.column_names]
        if missing:
            raise ValueError(
                f"Column(s) {missing} not found; the dataset has columns {part.column_names}. "
                "Fix the `columns` mapping (source name -> standard name)."
            )
    mapping = {src: dst for src, dst in columns.items() if src != dst}
    return data.rename_columns(mapping) if mapping else data


_SPLIT_RE = re.compile(r"^\s*([\w.-]+)\s*(\[.*\])?\s*$")


def slice_split(data: Dataset | DatasetDict, split: str) -> Dataset:
    """Apply split syntax such as ``"train"``, ``"train[:20%]"`` or ``"test[10:50]"`` locally."""
    match = _SPLIT_RE.match(split)
    if match is None:
        raise ValueError(f"Cannot parse split '{split}'; use e.g. 'train' or 'train[:20%]'.")
    name, sl = match.group(1), match.group(2)
    if isinstance(data, DatasetDict):
        if name not in data:
            raise ValueError(f"Split '{name}' not found; available splits: {list(data)}.")
        ds = data[name]
    else:
        if name != "train":
            raise ValueError(f"A single dataset (file or save_to_disk folder) is split 'train'; got '{split}'.")
        ds = data
    if not sl:
        return ds
    instruction = datasets.ReadInstruction.from_spec(f"{name}{sl}")
    (bounds,) = instruction.to_absolute({name: len(ds)})
    start = bounds.from_ or 0
    stop = len(ds) if bounds.to is None else bounds.to
    return ds.select(range(start, stop))


_HUB_ID_RE = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def _looks_like_path(source: str) -> bool:
    """True unless ``source`` is shaped like a Hub id (``name`` or ``owner/name``)."""
    if Path(source).suffix.lower() in LOCAL_FORMATS or source.startswith((".", "~")):
        return True
    return _HUB_ID_RE.match(source) is None


def _files_dict(data_files: Any, base: Path | None) -> dict[str, list[Path]]:
    if isinstance(data_files, (str, os.PathLike)):
        data_files = {"train": [data_files]}
    elif isinstance(data_files, Sequence):
        data_files = {"train": list(data_files)}
    out: dict[str, list[Path]] = {}
    for split, files in dict(data_files).items():
        files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
        out[split] = [(base / f) if base is not None else Path(f).expanduser() for f in files]
    return out


def _read_files(data_files: dict[str, list[Path]], fmt: str | None, kw: dict) -> DatasetDict:
    parts = {}
    for split, files in data_files.items():
        tables = [read_local_file(f, fmt, **dict(kw)) for f in files]
        parts[split] = tables[0] if len(tables) == 1 else datasets.concatenate_datasets(tables)
    return DatasetDict(parts)


def load_data(
    source: str | os.PathLike,
    *,
    split: str | None = None,
    name: str | None = None,
    data_files: Any = None,
    columns: Mapping[str, str] | None = None,
    **kw: Any,
) -> Dataset | DatasetDict:
    """Load a dataset and rename its columns to the standard schema.

    ``source`` is one of:

    * a local file (``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.parquet``) -> split ``"train"``;
    * a folder written by ``save_to_disk`` (loaded with :func:`datasets.load_from_disk`);
    * a folder or a format name (``"csv"``, ``"json"``, ...) together with ``data_files``
      (a path, list of paths or ``{split: paths}``, relative to the folder);
    * otherwise a Hub id, loaded with :func:`datasets.load_dataset` (``name`` = config,
      ``data_files`` and ``**kw`` passed through).

    ``split`` (``"train"``, ``"train[:20%]"``...) returns one :class:`Dataset`; without it a
    :class:`DatasetDict` is returned. ``columns`` maps source names to standard names.
    A missing local path raises FileNotFoundError naming the path.
    """
    src = os.fspath(source)
    path = Path(src).expanduser()
    fmt_name = src.lower().lstrip(".")
    if fmt_name in set(LOCAL_FORMATS.values()) and data_files is not None:
        data: Dataset | DatasetDict = _read_files(_files_dict(data_files, None), fmt_name, kw)
    elif path.is_dir() and data_files is not None:
        data = _read_files(_files_dict(data_files, path), None, kw)
    elif path.is_dir():
        if not any((path / f).exists() for f in ("dataset_dict.json", "state.json", "dataset_info.json")):
            raise FileNotFoundError(
                f"'{path}' is a folder but not one written by save_to_disk; "
                "pass data_files=... to read files inside it."
            )
        data = datasets.load_from_disk(str(path), keep_in_memory=kw.pop("keep_in_memory", None))
    elif path.is_file():
        data = _read_files({"train": [path]}, None, kw)
    elif _looks_like_path(src):
        raise FileNotFoundError(f"Data path not found: '{path}'. Check the path (or the Hub id).")
    else:
        data = datasets.load_dataset(src, name, split=split, data_files=data_files, **kw)
        return rename_to_standard(data, columns)
    if split is not None:
        data = slice_split(data, split)
    return rename_to_standard(data, columns)
