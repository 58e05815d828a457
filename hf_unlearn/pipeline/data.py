"""The data side of a job (`hf_unlearn.pipeline.job.JobArguments`): load, hold out, sample, select the forget set,
encode (`prepare` → `JobData`).

Shared by `hf-unlearn run | audit | split`, the examples and the benchmark through `hf_unlearn.pipeline`, so they all
sample and select the same rows for the same job. Raises ``ValueError`` / ``FileNotFoundError`` naming the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, concatenate_datasets

from .. import io as hf_io
from ..audit import TofuData
from ..data.collators import CausalLMCollator, ClassificationCollator
from ..data.loading import DATA_DIR_ENV, default_data_dir, load_data
from ..data.preprocessing import preprocess_images, tokenize_classification, tokenize_qa
from ..data.selection import class_ids, label_names, sample_rows, seeded_order, select_forget
from ..data.sources import (
    SOURCES,
    bundled_sample_dir,
    get_source,
    load_digits,
    load_goemotions,
    load_mnist,
    load_source,
    load_tofu,
)
from .models import load_processor

#: the task of each registered dataset (files and Hub ids: single_label unless the job says otherwise)
TASKS = {"goemotions": "single_label", "banking77": "single_label", "tofu": "causal_lm",
         "mnist": "image_classification", "digits": "image_classification"}
SELECTORS = ("forget_fraction", "forget_classes", "forget_ids")


@dataclass
class RawSplits:
    """Standard-schema rows (with ``id_column``) before preprocessing: train (forget + retain), held-out parts, and
    a line saying where the data came from."""

    train: Dataset
    validation: Dataset
    test: Dataset
    task: str
    source: str = ""


def job_task(job: Any, task: str | None) -> str:
    """``task`` when given, else the registered dataset's (single_label for files and Hub ids)."""
    return task or TASKS.get(job.dataset, "single_label")


def _with_ids(ds: Dataset, column: str, prefix: str = "") -> Dataset:
    if column in ds.column_names:
        return ds
    return ds.add_column(column, [f"{prefix}{i}" for i in range(len(ds))])


def _hold_out(train: Dataset, parts: dict[str, Dataset | None], job: Any, seed: int) -> list[Dataset]:
    """Fill missing validation/test parts with seeded disjoint rows of ``train``; returns [train, val, test]."""
    order = seeded_order(len(train), seed)
    start = 0
    for name, n in (("test", job.test_rows), ("validation", job.val_rows)):
        if parts.get(name) is None:
            parts[name] = train.select(order[start:start + n])
            start += n
    if start >= len(train):
        raise ValueError(f"val_rows + test_rows = {start} leave no training rows of {len(train)}; lower them.")
    rest = train.select(sorted(order[start:])) if start else train
    return [rest, parts["validation"], parts["test"]]


def _encode_string_labels(parts: list[Dataset], column: str) -> list[Dataset]:
    if column not in parts[0].column_names or parts[0].features[column].dtype != "string":
        return parts
    names = sorted({str(v) for part in parts for v in part[column]})
    return [part.cast_column(column, ClassLabel(names=names)) for part in parts]


def shown(path: Any) -> str:
    """``path`` as printed: relative to the working directory when it lies below it, else absolute."""
    resolved = Path(path).resolve()
    return os.path.relpath(resolved) if resolved.is_relative_to(Path.cwd().resolve()) else str(resolved)


def load_goemotions_for(job: Any, single_label: bool) -> tuple[Any, str]:
    """GoEmotions and a line saying where it came from: ``data_dir``, else ``$HF_UNLEARN_DATA_DIR``, else the Hub,
    else (offline) the sample bundled with hf-unlearn."""
    folder = job.data_dir or os.environ.get(DATA_DIR_ENV)
    if folder:
        where = "--data_dir" if job.data_dir else f"${DATA_DIR_ENV}"
        return load_goemotions(folder, single_label=single_label), f"local files in {folder} ({where})"
    hub_id = job.hub_dataset or get_source("goemotions").hub_id
    if hf_io.hub_reachable(hub_id):
        return load_goemotions(hub_id=hub_id, search_default_dir=False, single_label=single_label), \
            f"the Hub ({hub_id})"
    sample = bundled_sample_dir("goemotions")
    return load_goemotions(sample, single_label=single_label), \
        f"the GoEmotions sample bundled with hf-unlearn ({shown(sample)}), as the Hub is unreachable"


def load_tofu_for(job: Any, with_variants: bool = False) -> tuple[Dataset, Dataset, str]:
    """TOFU's forget split, its retain split and a line saying where they came from: ``data_dir``, else the shared
    data folder (``$HF_UNLEARN_DATA_DIR`` or ``../shared/data``), else the Hub, else (offline, forget10) the sample
    bundled with hf-unlearn. ``with_variants``: forget rows keep the answer variants TOFU's truth ratio needs."""
    kw = {"forget": job.forget_split, "with_variants": with_variants}
    if job.data_dir:
        return *load_tofu(job.data_dir, **kw), f"TOFU, local files in {job.data_dir} (--data_dir)"
    shared = default_data_dir() / "tofu"
    if (shared / f"{job.forget_split}.json").is_file():
        return *load_tofu(shared, **kw), f"TOFU, local files in {shared}"
    hub_id = job.hub_dataset or get_source("tofu").hub_id
    if hf_io.hub_reachable(hub_id):
        return *load_tofu(None, hub_id=hub_id, **kw), f"TOFU from the Hub ({hub_id})"
    if job.forget_split != "forget10":
        raise FileNotFoundError(f"No TOFU files in {shared} and the Hub is unreachable; the sample bundled with "
                                "hf-unlearn holds forget10 only: set forget_split forget10, or data_dir.")
    sample = bundled_sample_dir("tofu")
    return *load_tofu(sample, **kw), \
        f"the TOFU sample bundled with hf-unlearn ({shown(sample)}: 40 forget / 80 retain rows), as no local files " \
        "were found and the Hub is unreachable; pass --data_dir FOLDER for the full set"


def tofu_audit_rows(job: Any, forget: Dataset, retain: Dataset) -> tuple[Dataset, Dataset]:
    """The job's raw forget rows with their answer variants (for TOFU's truth ratio) and its retain rows as
    question/answer pairs (for the model utility), in memory only."""
    variants = load_tofu_for(job, with_variants=True)[0]
    rows = [int(str(i).rsplit("/", 1)[-1]) for i in forget[job.id_column]]
    return variants.select(rows), retain.select_columns(["question", "answer"])


def load_raw(job: Any, task: str | None, seed: int) -> RawSplits:
    """Load the job's data, hold out validation (τ) and test (audit) rows and sample the training rows."""
    task = job_task(job, task)
    idc = job.id_column
    if job.dataset == "goemotions":
        data, source = load_goemotions_for(job, single_label=task != "multi_label")
        train, val, test = (_with_ids(data[s], idc) for s in ("train", "validation", "test"))
        val, test = sample_rows(val, job.val_rows, seed), sample_rows(test, job.test_rows, seed)
        return RawSplits(sample_rows(train, job.train_rows, seed), val, test, task, source)
    if job.dataset == "tofu":
        forget, retain, source = load_tofu_for(job)
        retain_name = f"retain{100 - int(job.forget_split[-2:]):02d}"
        forget, retain = _with_ids(forget, idc, f"{job.forget_split}/"), _with_ids(retain, idc, f"{retain_name}/")
        retain, val, test = _hold_out(retain, {}, job, seed)
        train = concatenate_datasets(
            [sample_rows(forget, job.forget_rows, seed), sample_rows(retain, job.train_rows, seed)]
        )
        return RawSplits(train, val, test, task, source)
    if job.dataset in ("mnist", "digits"):
        data = load_digits() if job.dataset == "digits" else load_mnist(
            job.data_dir, hub_id=job.hub_dataset or "ylecun/mnist")
        train, val, test = _hold_out(_with_ids(data, idc), {}, job, seed)
    else:
        spec = SOURCES.get(job.dataset)  # a registered text set (banking77): its files in data_dir, else the Hub
        data = load_source(spec, job.data_dir, hub_id=job.hub_dataset) if spec else load_data(
            job.dataset, data_files=job.data_files, name=job.dataset_config)
        if "train" not in data:
            raise ValueError(f"The dataset '{job.dataset}' has no 'train' split (splits: {list(data)}).")
        parts = {s: _with_ids(data[s], idc) if s in data else None for s in ("validation", "test")}
        train, val, test = _hold_out(_with_ids(data["train"], idc), parts, job, seed)
        train, val, test = _encode_string_labels([train, val, test], job.label_column or "label")
        if spec:  # its own test split: a seeded sample of test_rows, as for GoEmotions
            test = sample_rows(test, job.test_rows, seed)
    return RawSplits(sample_rows(train, job.train_rows, seed), val, test, task, job.dataset)


def selector_of(job: Any) -> dict[str, Any]:
    """The job's forget selector as ``{key: value}`` (one key; refuses two)."""
    given = {k: getattr(job, k) for k in SELECTORS if getattr(job, k) is not None}
    if len(given) > 1:
        raise ValueError(f"Choose one forget selector; got {', '.join(given)}.")
    return given


def _label_column(job: Any, train: Dataset) -> str:
    return job.label_column or ("label" if "label" in train.column_names else "labels")


def job_class_ids(classes: list[Any], names: list[str] | None) -> list[int]:
    """The label ids of a job's ``forget_classes`` (names, or ids: digits from YAML or flags count as ids)."""
    return class_ids([int(c) if str(c).isdigit() else c for c in classes], names)


def _check_classes_present(job: Any, train: Dataset) -> None:
    """A requested class with no row in the sampled training rows: say so, with advice that fits a class selector."""
    column = _label_column(job, train)
    if column not in train.column_names:
        return
    names = label_names(train, column) or []
    present = {v for row in train[column] for v in (row if isinstance(row, list) else [row])}
    wanted = [c for c in job.forget_classes if str(c).isdigit() or c in names]  # an unknown name fails in selection
    ids = dict(zip(wanted, job_class_ids(wanted, names or None)))
    absent = [str(c) for c, i in ids.items() if i not in present]
    if absent:
        rows = "every training row" if not job.train_rows else f"the {len(train)} sampled training rows"
        raise ValueError(f"Class(es) {', '.join(absent)} have no row in {rows} (train_rows={job.train_rows}): "
                         "raise train_rows (0 = all rows) or choose classes present in the sample.")


def select(job: Any, raw: RawSplits, seed: int) -> tuple[Dataset, Dataset]:
    """``(forget, retain)`` raw rows by the job's selector (default: 15%, or the TOFU forget split)."""
    given = selector_of(job)
    kw: dict[str, Any] = {"seed": seed, "missing_ids": job.missing_ids}
    if "forget_ids" in given:
        kw.update(ids=job.forget_ids, id_column=job.id_column)
    elif "forget_classes" in given:
        _check_classes_present(job, raw.train)
        classes = [int(c) if str(c).isdigit() else c for c in job.forget_classes]
        kw.update(classes=classes, label_column=job.label_column)
    elif job.dataset == "tofu" and not given:
        prefix = f"{job.forget_split}/"
        kw.update(ids=[i for i in raw.train[job.id_column] if str(i).startswith(prefix)], id_column=job.id_column)
    else:
        kw.update(fraction=0.15 if job.forget_fraction is None else job.forget_fraction)
    return select_forget(raw.train, **kw)


def class_names(raw: RawSplits, job: Any) -> tuple[int, list[str] | None]:
    """(number of classes, names or None) of a classification job."""
    column = _label_column(job, raw.train)
    names = label_names(raw.train, column)
    if names is not None:
        return len(names), names
    values = [v for part in (raw.train, raw.validation, raw.test) for row in part[column]
              for v in (row if isinstance(row, list) else [row])]
    return int(max(values)) + 1, None


def encode(ds: Any, job: Any, task: str, processor: Any) -> Any:
    """Model inputs and ``labels`` for one raw part."""
    if task == "causal_lm":
        return tokenize_qa(ds, processor, max_length=job.max_length)
    if task == "image_classification":
        rgb = len(getattr(processor, "image_mean", None) or [0, 0, 0]) == 3
        return preprocess_images(ds, processor, label_column=job.label_column or "label", convert_rgb=rgb,
                                 lazy=False).with_format("torch")
    return tokenize_classification(ds, processor, text_column=job.text_column, label_column=job.label_column,
                                   multi_label=task == "multi_label", max_length=job.max_length)


def collator_for(task: str, processor: Any) -> Any:
    """The batch collator of a task (pads text; stacks images)."""
    if task == "causal_lm":
        return CausalLMCollator(processor)
    return ClassificationCollator(None if task == "image_classification" else processor)


@dataclass
class JobData:
    """A job's encoded parts, processor, collator and labels."""

    train: Any
    forget: Any
    retain: Any
    validation: Any
    test: Any
    processor: Any
    collator: Any
    num_labels: int
    names: list[str] | None
    source: str
    task: str = ""
    tofu_rows: tuple | None = None  # TOFU: (forget rows with answer variants, retain QA rows), for TOFU's metrics

    def audit_split(self, job: Any, seed: int, retrained: Any = None) -> dict[str, Any]:
        """`recipes.audit`'s arguments; causal LMs add the tokenizer, TOFU jobs TOFU's metrics (forget quality
        against ``retrained`` when given)."""
        split = dict(forget=self.forget, test=self.test, retain=self.retain, data_collator=self.collator, seed=seed,
                     max_retain=job.audit_max_retain, batch_size=job.audit_batch_size)
        if self.task == "causal_lm":
            split["tokenizer"] = self.processor
        if self.tofu_rows is not None:
            split["tofu"] = TofuData(*self.tofu_rows, retrained=retrained, max_length=job.max_length,
                                     batch_size=job.audit_batch_size, seed=seed)
        return split


def prepare(job: Any, task: str, seed: int, source: str | None = None) -> JobData:
    """Raw splits, forget selection, processor (from ``source`` when it holds one), encoded parts and collator."""
    raw = load_raw(job, task, seed)
    forget_raw, retain_raw = select(job, raw, seed)
    num_labels, names = (0, None) if task == "causal_lm" else class_names(raw, job)
    processor = load_processor(job, task, source)
    parts = {name: encode(ds, job, task, processor) for name, ds in
             (("train", raw.train), ("forget", forget_raw), ("retain", retain_raw), ("validation", raw.validation),
              ("test", raw.test))}
    tofu = tofu_audit_rows(job, forget_raw, retain_raw) if job.dataset == "tofu" and task == "causal_lm" else None
    return JobData(**parts, processor=processor, collator=collator_for(task, processor), num_labels=num_labels,
                   names=names, source=raw.source, task=task, tofu_rows=tofu)
