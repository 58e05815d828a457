"""Make a MiniLM (BERT) emotion classifier forget 15 % of its GoEmotions training rows with ∇τ, and audit it.

Trains the original model (cached in OUTPUT_DIR/_original; skipped with --original_model), picks the forget set
(--forget_fraction, --forget_classes or --forget_ids FILE), unlearns it (--method for the baselines), audits the
original and the unlearned model (and a model retrained on the retain set with --retrain), prints the audit table,
and saves model + model card + audit.json + plots to OUTPUT_DIR (--push_to_hub uploads them).

Data: --data_dir FOLDER (train.tsv, dev.tsv, test.tsv, labels.txt), else $HF_UNLEARN_DATA_DIR, else the Hub
(google-research-datasets/go_emotions), else (offline) the GoEmotions sample bundled with hf-unlearn.

    python examples/unlearn_bert.py                          # the demo (`make demo`)
    python examples/unlearn_bert.py --data_dir ../shared/data/goemotions --train_rows 2000 --retrain
    python examples/unlearn_bert.py --quick                  # a tiny smoke run
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from transformers import AutoTokenizer, set_seed

from hf_unlearn import (
    ClassificationCollator,
    FinetuneRecipe,
    UnlearningArguments,
    check_hub_access,
    compare,
    finetune,
    label_names,
    load_goemotions,
    load_text_classifier,
    select_forget,
    tokenize_classification,
    unlearn,
)
from hf_unlearn.data import bundled_sample_dir, get_source, sample_rows
from hf_unlearn.data.loading import DATA_DIR_ENV
from hf_unlearn.hub import hub_reachable
from hf_unlearn.recipes import audit, default_text_model
from hf_unlearn.scripts import run_script, script_parser

QUICK = {"train_rows": 160, "val_rows": 48, "test_rows": 64, "original_epochs": 2, "max_length": 32}


@dataclass
class JobArguments:
    """What to unlearn from which model (the unlearning knobs are UnlearningArguments)."""

    data_dir: str | None = field(default=None, metadata={
        "help": "GoEmotions folder (train.tsv, dev.tsv, test.tsv, labels.txt). Default: $HF_UNLEARN_DATA_DIR, else "
                "the Hub, else the bundled sample."})
    model: str | None = field(default=None, metadata={"help": "Base checkpoint (default: all-MiniLM-L6-v2)."})
    original_model: str | None = field(
        default=None, metadata={"help": "An already fine-tuned model to unlearn from (else trained and cached)."}
    )
    forget_fraction: float | None = field(default=None, metadata={"help": "Random forget fraction (default 0.15)."})
    forget_classes: list[str] | None = field(default=None, metadata={"help": "Remove these classes (names or ids)."})
    forget_ids: str | None = field(default=None, metadata={"help": "File with one comment id per line to forget."})
    train_rows: int = field(default=600, metadata={"help": "Single-label training rows (seeded sample; 0 = all)."})
    val_rows: int = field(default=300, metadata={"help": "Dev rows for τ (held out)."})
    test_rows: int = field(default=400, metadata={"help": "Test rows for the audit."})
    original_epochs: float = field(default=8, metadata={"help": "Epochs of the original (and retrain) recipe."})
    original_lr: float = field(default=2e-4, metadata={"help": "Learning rate of the original (and retrain) recipe."})
    max_length: int = field(default=64, metadata={"help": "Token limit per comment."})
    audit_retain_rows: int = field(default=200, metadata={"help": "Retain rows audited (utility only)."})
    retrain: bool = field(default=False, metadata={"help": "Also retrain on the retain set (gold standard)."})
    quick: bool = field(default=False, metadata={
        "help": f"A tiny smoke run ({', '.join(f'{k}={v}' for k, v in QUICK.items())}); explicit flags win."})


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def load_job_data(job: JobArguments):
    """GoEmotions (single-label rows) and a line saying where it came from."""
    folder = job.data_dir or os.environ.get(DATA_DIR_ENV)
    if folder:
        where = "--data_dir" if job.data_dir else f"${DATA_DIR_ENV}"
        return load_goemotions(folder, single_label=True), f"local files in {folder} ({where})"
    hub_id = get_source("goemotions").hub_id
    if hub_reachable(hub_id):
        return load_goemotions(search_default_dir=False, single_label=True), f"the Hub ({hub_id})"
    sample = bundled_sample_dir("goemotions")
    return load_goemotions(sample, single_label=True), f"the GoEmotions sample bundled with hf-unlearn ({sample}), " \
        "as the Hub is unreachable"


def main(argv: list[str]) -> None:
    parser = script_parser((JobArguments, UnlearningArguments), __doc__, argv, prog="unlearn_bert.py")
    # 32 forget + 32 retain rows per step, as in the benchmark; TrainingArguments' defaults otherwise
    parser.set_defaults(output_dir="outputs/unlearn_bert", per_device_train_batch_size=32, report_to="none")
    job, args = parser.parse_args_into_dataclasses(argv)
    if job.quick:
        given = {a.lstrip("-").split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
        for key, value in QUICK.items():
            if key not in given:
                setattr(job, key, value)
    if sum(x is not None for x in (job.forget_fraction, job.forget_classes, job.forget_ids)) > 1:
        raise ValueError("Choose one of --forget_fraction, --forget_classes, --forget_ids.")
    if args.push_to_hub:  # before any work: a missing token or an unreachable Hub fails now, with nothing written
        user, name = check_hub_access(args.hub_token), os.path.basename(os.path.abspath(args.output_dir))
        args.hub_model_id = args.hub_model_id or (f"{user}/{name}" if user else name)
    base = job.model or default_text_model()

    step("Loading the data and the tokenizer")
    data, source = load_job_data(job)
    print(f"Data: {source}.", flush=True)
    names = label_names(data["train"], "label")
    tokenizer = AutoTokenizer.from_pretrained(base)
    keep = ["id"] if job.forget_ids else []

    def tok(ds):
        return tokenize_classification(ds, tokenizer, label_column="label", max_length=job.max_length,
                                       keep_columns=keep)

    seed = args.seed
    train = tok(sample_rows(data["train"], job.train_rows, seed))
    validation = tok(sample_rows(data["validation"], job.val_rows, seed))
    test = tok(sample_rows(data["test"], job.test_rows, seed))
    collator = ClassificationCollator(tokenizer)
    recipe = FinetuneRecipe(epochs=job.original_epochs, learning_rate=job.original_lr, seed=seed)

    original_dir = job.original_model or os.path.join(args.output_dir, "_original")
    if os.path.isfile(os.path.join(original_dir, "config.json")):
        step(f"Loading the original model from {original_dir} (delete it to train again)")
        original, _ = load_text_classifier(original_dir, len(names), label_names=names)
    else:
        step(f"Training the original model on {len(train)} rows for {recipe.epochs:g} epochs "
             f"(cached in {original_dir})")
        set_seed(seed)  # the fresh classification head: the same model on every run
        original, _ = load_text_classifier(base, len(names), label_names=names)
        seconds = finetune(original, train, recipe, output_dir=original_dir, data_collator=collator,
                           disable_tqdm=False)
        if args.should_save:
            original.save_pretrained(original_dir)
            tokenizer.save_pretrained(original_dir)
        print(f"Trained in {seconds:.0f}s.", flush=True)

    if job.forget_classes:
        selector = {"classes": job.forget_classes}
    elif job.forget_ids:
        selector = {"ids": job.forget_ids, "id_column": "id"}
    else:
        selector = {"fraction": job.forget_fraction or 0.15}
    forget, retain = select_forget(train, **selector, seed=seed, label_column="labels", label_names=names)
    if keep:
        forget, retain = forget.remove_columns(keep), retain.remove_columns(keep)

    split = dict(forget=forget, test=test, retain=retain, data_collator=collator, seed=seed,
                 max_retain=job.audit_retain_rows)
    step(f"Auditing the original model: forget set ({len(forget)} rows) vs unseen test rows ({len(test)})")
    reports = {"original": audit(original, **split)}
    step(f"Unlearning {len(forget)} rows with `{args.method}` while keeping {len(retain)} "
         f"(τ from {len(validation)} held-out rows)")
    trainer, seconds = unlearn(original, forget=forget, retain=retain, validation=validation, args=args,
                               data_collator=collator, processing_class=tokenizer)
    step("Auditing the unlearned model")
    reports["unlearned"] = audit(trainer.model, **split)
    timings = {"unlearn_s": round(seconds, 1)}
    if job.retrain:
        step(f"Retraining from the base model on the {len(retain)} retain rows (the gold standard), then its audit")
        set_seed(seed)
        retrained, _ = load_text_classifier(base, len(names), label_names=names)
        timings["retrain_s"] = round(finetune(retrained, retain, recipe, output_dir=os.path.join(
            args.output_dir, "_retrain"), data_collator=collator, disable_tqdm=False), 1)
        reports["retrained"] = audit(retrained, **split)

    comparison = compare(reports)
    print("\n" + comparison.to_markdown())
    tau = "–" if trainer.tau is None else f"{trainer.tau:.3f}"
    print(f"{args.method}: {trainer.state.global_step} steps, τ={tau}, α₀={trainer.alpha0}, {seconds:.0f}s"
          + (f" ({seconds / timings['retrain_s']:.0%} of retraining)" if job.retrain else ""))
    if args.should_save:
        trainer.save_audit(reports["unlearned"], before=reports["original"], comparison=comparison, timings=timings)
        trainer.save_model(args.output_dir)  # after save_audit: the model card quotes the comparison
        if args.push_to_hub:
            trainer.push_to_hub(commit_message="Unlearned with hf-unlearn")
        print(f"Saved the model, its card (README.md), audit.json and plots to {args.output_dir}")


if __name__ == "__main__":
    run_script(main, sys.argv[1:])
