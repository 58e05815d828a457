"""The main job: make a BERT-family classifier fine-tuned on GoEmotions forget part of its training data.

    accelerate launch examples/unlearn_bert.py --data_dir ../shared/data/goemotions
    python examples/unlearn_bert.py --data_dir ../shared/data/goemotions --forget_fraction 0.15 --retrain

Steps: get the original model (train it when --original_model is not given, cached in the output folder), select
the forget set (--forget_fraction, --forget_classes or --forget_ids FILE), unlearn with ∇τ (--method for
baselines), audit original vs unlearned (and vs a model retrained on the retain set with --retrain), print the
audit table, save model + model card + audit.json + plots, and push with --push_to_hub.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from hf_unlearn import UnlearningArguments
from hf_unlearn.audit import compare
from hf_unlearn.data import (
    ClassificationCollator,
    label_names,
    load_goemotions,
    sample_rows,
    select_forget,
    tokenize_classification,
)
from hf_unlearn.recipes import (
    FinetuneRecipe,
    audit,
    default_text_model,
    finetune,
    load_text_classifier,
    unlearn,
)


@dataclass
class JobArguments:
    """What to unlearn from which model (the unlearning knobs are UnlearningArguments)."""

    data_dir: str | None = field(default=None, metadata={"help": "Local GoEmotions folder; default: the Hub."})
    model: str | None = field(default=None, metadata={"help": "Base checkpoint (default: all-MiniLM-L6-v2)."})
    original_model: str | None = field(
        default=None, metadata={"help": "An already fine-tuned model to unlearn from (else trained and cached)."}
    )
    forget_fraction: float | None = field(default=None, metadata={"help": "Random forget fraction (default 0.15)."})
    forget_classes: list[str] | None = field(default=None, metadata={"help": "Remove these classes (names or ids)."})
    forget_ids: str | None = field(default=None, metadata={"help": "File with one comment id per line to forget."})
    train_rows: int = field(default=2000, metadata={"help": "Single-label training rows (seeded sample; 0 = all)."})
    val_rows: int = field(default=600, metadata={"help": "Dev rows for τ (held out)."})
    test_rows: int = field(default=800, metadata={"help": "Test rows for the audit."})
    original_epochs: float = field(default=6, metadata={"help": "Epochs of the original (and retrain) recipe."})
    original_lr: float = field(default=1e-4, metadata={"help": "Learning rate of the original (and retrain) recipe."})
    max_length: int = field(default=64, metadata={"help": "Token limit per comment."})
    retrain: bool = field(default=False, metadata={"help": "Also retrain on the retain set (gold standard)."})


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--output_dir" not in argv:
        argv += ["--output_dir", "outputs/unlearn_bert"]
    if "--per_device_train_batch_size" not in argv:  # 32 forget + 32 retain per step, as in the benchmark
        argv += ["--per_device_train_batch_size", "32"]
    job, args = HfArgumentParser((JobArguments, UnlearningArguments)).parse_args_into_dataclasses(argv)
    logging.basicConfig(level=logging.INFO if args.should_log else logging.WARNING, format="%(message)s")
    if sum(x is not None for x in (job.forget_fraction, job.forget_classes, job.forget_ids)) > 1:
        raise SystemExit("Choose one of --forget_fraction, --forget_classes, --forget_ids.")
    base = job.model or default_text_model()

    data = load_goemotions(job.data_dir, single_label=True)
    names = label_names(data["train"], "label")
    _, tokenizer = load_text_classifier(base, len(names), label_names=names)
    keep = ["id"] if job.forget_ids else []

    def tok(ds):
        return tokenize_classification(ds, tokenizer, label_column="label", max_length=job.max_length,
                                       keep_columns=keep)

    train = tok(sample_rows(data["train"], job.train_rows))
    validation, test = tok(sample_rows(data["validation"], job.val_rows)), tok(sample_rows(data["test"], job.test_rows))
    collator = ClassificationCollator(tokenizer)
    recipe = FinetuneRecipe(epochs=job.original_epochs, learning_rate=job.original_lr, seed=args.seed)

    original_dir = job.original_model or os.path.join(args.output_dir, "_original")
    if os.path.isfile(os.path.join(original_dir, "config.json")):
        original, _ = load_text_classifier(original_dir, len(names), label_names=names)
        print(f"Original model: {original_dir}")
    else:
        original, _ = load_text_classifier(base, len(names), label_names=names)
        print(f"Training the original model on {len(train)} rows ({recipe.epochs} epochs)...", flush=True)
        seconds = finetune(original, train, recipe, output_dir=original_dir, data_collator=collator)
        if args.should_save:
            original.save_pretrained(original_dir)
            tokenizer.save_pretrained(original_dir)
        print(f"  done in {seconds:.0f}s, cached in {original_dir}")

    if job.forget_classes:
        selector = {"classes": job.forget_classes}
    elif job.forget_ids:
        selector = {"ids": job.forget_ids, "id_column": "id"}
    else:
        selector = {"fraction": job.forget_fraction or 0.15}
    forget, retain = select_forget(train, **selector, seed=args.seed, label_column="labels", label_names=names)
    if keep:
        forget, retain = forget.remove_columns(keep), retain.remove_columns(keep)
    print(f"Forget {len(forget)} rows, retain {len(retain)}, τ from {len(validation)} held-out rows.")

    audit_split = dict(forget=forget, test=test, retain=retain, data_collator=collator, seed=args.seed)
    reports = {"original": audit(original, **audit_split)}
    if args.push_to_hub and not args.hub_model_id:
        args.hub_model_id = os.path.basename(os.path.abspath(args.output_dir))
    trainer, seconds = unlearn(original, forget=forget, retain=retain, validation=validation, args=args,
                               data_collator=collator, processing_class=tokenizer)
    reports["unlearned"] = audit(trainer.model, **audit_split)
    timings = {"unlearn_s": round(seconds, 1)}
    if job.retrain:
        retrained, _ = load_text_classifier(base, len(names), label_names=names)
        timings["retrain_s"] = round(finetune(retrained, retain, recipe, output_dir=os.path.join(
            args.output_dir, "_retrain"), data_collator=collator), 1)
        reports["retrained"] = audit(retrained, **audit_split)
    comparison = compare(reports)
    print("\n" + comparison.to_markdown())
    print(f"\n∇τ: {trainer.state.global_step} steps, τ={trainer.tau:.3f}, α₀={trainer.alpha0}, {seconds:.0f}s"
          + (f" ({seconds / timings['retrain_s']:.0%} of retraining)" if job.retrain else ""))

    if args.should_save:
        trainer.save_model(args.output_dir)
        trainer.save_audit(reports["unlearned"], before=reports["original"], comparison=comparison, timings=timings)
        if args.push_to_hub:
            trainer.push_to_hub(commit_message="Unlearned with hf-unlearn")
        print(f"Saved model, model card, audit.json and plots to {args.output_dir}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                      for k, v in reports["unlearned"].to_dict().items() if not isinstance(v, dict)}))


if __name__ == "__main__":
    main()
