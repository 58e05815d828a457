"""The one job pipeline behind `hf-unlearn run | audit | split` and the examples (`examples/unlearn_*.py`).

`run_job` runs a job (`hf_unlearn.pipeline.job`): data (`hf_unlearn.pipeline.data`) → the original model (trained
once, cached in ``OUTPUT_DIR/_original``) → audit → unlearn → audit → retrain on request → compare → save: the audit
(``audit.json`` + plots), the model, its card (with base_model, dataset and license) and the job description
``job.json``, all in one save (`hf_unlearn.trainer.persistence.publish`). `audit_job` reads job.json to audit exactly
the forget set the run used; `write_split` writes a job's forget/retain split as ids only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..audit import compare
from ..audit.report import write_audit_json
from ..data.identity import dataset_digest
from ..hub.push import check_hub_access
from ..io import write_json_atomic, write_text_atomic
from ..provenance import provenance
from ..salt import SALT_NAME, digest_matches, new_salt, read_salt
from ..trainer.persistence import STAGING_NAME, OutputDirLock, check_output_dir, job_lock
from .cache import cache_matches, cached_seconds, recipe_fields, recipe_key, train_cached
from .checks import check_model_fits, guard_output_dir, resume_value
from .class_removal import JobExtras
from .data import SELECTORS, JobData, job_task, load_raw, prepare, select
from .job import (
    DATA_KEYS,
    DESCRIPTION,
    SELECTOR_FLAGS,
    JobArguments,
    card_metadata,
    describe,
    read_description,
    recorded_job,
)
from .models import is_model_dir, load_trained, resolve
from .recipes import FinetuneRecipe, audit, unlearn, with_reference

logger = logging.getLogger(__name__)


def _print(text: str) -> None:
    print(text, flush=True)


def run_job(job: JobArguments, args: Any, say: Callable[[str], None] = _print, show_table: bool = True) -> str:
    """Run the job; ``say`` reports each phase (and the table unless ``show_table`` is False: the CLI prints it once, on
    stdout). Returns the comparison table (Markdown; with the job's extra tables: `hf_unlearn.pipeline.class_removal`).
    The job holds ``output_dir``'s lock from its start, and a folder that holds another job's model is refused (unless
    ``overwrite_output_dir``) before anything is written or trained."""
    check_launch(args)
    check_output_dir(args.output_dir)
    for what in ("model", "tokenizer", "original_model"):  # a missing folder fails now, in one line, before any work
        if getattr(job, what) and getattr(job, what) != "bytes":
            resolve(getattr(job, what), f"--{what}")
    resume = resume_value(args.resume_from_checkpoint)
    if args.push_to_hub:  # before any work: a missing token or an unreachable Hub fails now, with nothing written
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
    original = _original(job, args, data, recipe, key, labels, original_dir, cached, say)
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
        _save(job, args, data, trainer, reports, comparison, extras.record(reports, trainer, description["rows"]),
              timings, description, salt)
        say(f"Saved the model, its card (README.md), audit.json and plots to {args.output_dir}")
    return table


def _original(job: JobArguments, args: Any, data: JobData, recipe: Any, key: dict[str, Any], labels: tuple,
              original_dir: str, cached: bool, say: Callable[[str], None]) -> Any:
    """The original model: loaded from ``original_dir`` when it holds this recipe's model trained on these rows,
    else trained from the base model and cached there."""
    rows = dataset_digest(data.train)
    if job.original_model is None and cached and not cache_matches(original_dir, key, rows):
        cached = False  # the cache was trained on other rows (e.g. the data files changed)
    if cached:
        hint = "" if job.original_model else " (delete it to train again)"
        say(f"\n==> Loading the original model from {original_dir}{hint}")
        return load_trained(original_dir, *labels, what="original_model")
    stale = " (the model cached there was made by another recipe or rows)" if is_model_dir(original_dir) else ""
    say(f"\n==> Training the original model on {len(data.train)} rows for {recipe.epochs:g} epochs "
        f"(cached in {original_dir}){stale}")
    original, seconds, _ = train_cached(job, data.train, recipe, original_dir, {**key, "rows": rows}, labels,
                                        **_training(args, data))
    say(f"Trained in {seconds:.0f}s.")
    return original


def _save(job: JobArguments, args: Any, data: JobData, trainer: Any, reports: dict[str, Any], comparison: Any,
          extra: dict[str, Any], timings: dict[str, float], description: dict[str, Any], salt: str) -> None:
    """The model, its card, audit.json (+ plots), job.json and the salt, as one save (`persistence.publish`); pushes
    when asked."""
    made_by = provenance(seeds=[args.seed], code=__file__, hide=SELECTOR_FLAGS)
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


def _training(args: Any, data: JobData) -> dict[str, Any]:
    """`train_cached`'s keywords for a job (``_*`` folders are never pushed)."""
    return dict(collator=data.collator, processor=data.processor, seed=args.seed, save=args.should_save,
                disable_tqdm=args.disable_tqdm)


def _retrained(job: JobArguments, args: Any, data: JobData, recipe: Any, key: dict[str, Any], labels: tuple,
               say: Callable[[str], None]) -> tuple[Any, float]:
    """The model retrained from the base model on the retain rows (cached in OUTPUT_DIR/_retrain) and its seconds."""
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


def audit_job(model: str, job: JobArguments | None, args: Any | None, *, original: str | None = None,
              retrained: str | None = None, out: str = "audit.json") -> str:
    """Audit ``model`` (and ``original`` / ``retrained``) on the forget set of the run that made it (its job.json;
    else the config's job); writes ``out`` in the run's audit.json layout. Returns the comparison table."""
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
    content = {"report": reports["unlearned"], "comparison": comparison,
               "models": {k: v for k, v in paths.items() if v}}
    if description:
        content.update(method=description["method"], job=description)
    write_audit_json(out, content)
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
