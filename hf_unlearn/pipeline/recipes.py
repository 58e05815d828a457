"""Shared recipes for the job pipeline (`hf_unlearn.pipeline.job`) and the benchmark: the original/retrain fine-tuning
recipe, one unlearning run, and the audit of a model against a split — each a thin composition of the library.
Model loaders live in `hf_unlearn.pipeline.models`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

from transformers import Trainer, TrainingArguments

from ..audit import UnlearningReport, audit_model, reference_losses
from ..data import sample_rows
from ..data.holdout import drop_copies
from ..trainer.arguments import UnlearningArguments
from ..trainer.callbacks import StepProgress
from ..trainer.trainer import UnlearningTrainer

logger = logging.getLogger(__name__)

#: how long a retrained reference trains: the original's optimizer steps (the default) or its epochs
RETRAIN_BUDGETS = ("steps", "epochs")


@dataclass
class FinetuneRecipe:
    """How the original model is trained, and the retrained-from-scratch reference with it (same recipe)."""

    epochs: float = 5
    learning_rate: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    seed: int = 0
    warmup: float = 0.0  # linear warm-up: a fraction of the steps in [0, 1), or a step count
    max_steps: int | None = None  # optimizer steps, overriding epochs (None, the default, is left out of cache keys)

    def steps_on(self, rows: int, processes: int = 1) -> int:
        """The optimizer steps this recipe takes on ``rows`` rows over ``processes`` data-parallel processes."""
        if self.max_steps is not None:
            return self.max_steps
        return math.ceil(self.epochs * math.ceil(rows / (self.batch_size * processes)))

    def with_steps_of(self, rows: int, processes: int = 1) -> FinetuneRecipe:
        """This recipe fixed to the optimizer steps it takes on ``rows`` rows: the retrained reference's budget
        (``retrain_budget="steps"``), so that a model retrained on the retain rows is trained as long as the original
        was on all of them, rather than for the same epochs over fewer rows (fewer steps, a less converged model)."""
        return replace(self, max_steps=self.steps_on(rows, processes))

    def for_retrain(self, budget: str, rows: int, processes: int = 1) -> FinetuneRecipe:
        """The retrained reference's recipe when this one trained the original on ``rows`` rows: fixed to the
        original's optimizer steps (``budget="steps"``) or this recipe as it is, the original's epochs ("epochs")."""
        if budget not in RETRAIN_BUDGETS:
            raise ValueError(f"retrain_budget={budget!r} is not one of {RETRAIN_BUDGETS}.")
        return self.with_steps_of(rows, processes) if budget == "steps" else self


def finetune(model, train, recipe: FinetuneRecipe, *, output_dir: str, data_collator=None,
             processing_class=None, disable_tqdm: bool = True, **training_args) -> float:
    """Fine-tune ``model`` on ``train`` in place with a plain `Trainer`; returns the wall time in seconds.

    ``training_args`` override or add `TrainingArguments` (e.g. the examples' ``warmup_steps`` and epoch logging).
    """
    args = TrainingArguments(output_dir, **{
        "num_train_epochs": recipe.epochs, "learning_rate": recipe.learning_rate,
        "per_device_train_batch_size": recipe.batch_size, "weight_decay": recipe.weight_decay, "seed": recipe.seed,
        "warmup_steps": recipe.warmup, "max_steps": -1 if recipe.max_steps is None else recipe.max_steps,
        "save_strategy": "no", "report_to": [], "logging_strategy": "no", "disable_tqdm": disable_tqdm,
        **training_args})
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=data_collator,
                      processing_class=processing_class,
                      callbacks=[StepProgress("fine-tuning")] if args.disable_tqdm else None)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def unlearn(model, *, forget, retain, validation, args: UnlearningArguments, data_collator=None,
            processing_class=None, callbacks=None, on_trainer=None,
            resume_from_checkpoint=None) -> tuple[UnlearningTrainer, float]:
    """One unlearning run; returns the trainer (its logs, τ history) and the wall time in seconds (τ included).
    ``on_trainer(trainer)`` runs before training (e.g. to attach an `AuditCallback` sized to the run);
    ``resume_from_checkpoint`` goes to ``trainer.train`` (a checkpoint folder, or True: the last one of this job).

    Retain rows that copy a forget row, and validation rows that copy a training row (natural duplicates, e.g. the
    same short comment twice in GoEmotions), are dropped first (counts in the log): the trainer refuses them.
    """
    retain, validation = drop_copies(forget, retain, validation)
    trainer = UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                                validation_dataset=validation, data_collator=data_collator,
                                processing_class=processing_class, callbacks=callbacks)
    if on_trainer is not None:
        on_trainer(trainer)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer, time.perf_counter() - start


def audit(model, *, forget, test, retain=None, data_collator=None, batch_size: int = 64,
          max_retain: int | None = 500, seed: int = 0, **kwargs) -> UnlearningReport:
    """The audit of ``model`` on a split (retain capped to ``max_retain`` seeded rows: it only measures utility).

    Other keyword arguments (``tokenizer``, ``max_samples``, ``task``) go to :func:`hf_unlearn.audit.audit_model`.
    """
    if retain is not None:
        retain = sample_rows(retain, max_retain, seed)
    return audit_model(model, forget=forget, test=test, retain=retain, data_collator=data_collator,
                       batch_size=batch_size, seed=seed, **kwargs)


def with_reference(split: dict, data, retrained) -> dict:
    """``split`` plus RMIA's inputs when there is a ``retrained`` model: it is the reference (a model that never saw
    the forget rows) and the τ rows the population (held out, neither forget nor test rows), as in the benchmark.
    The retrained model itself is audited without it (a model cannot be its own reference)."""
    if retrained is None:
        return split
    keys = ("forget", "test", "data_collator", "batch_size", "seed", "tokenizer")
    reference = reference_losses(retrained, population=data.validation, **{k: split[k] for k in keys if k in split})
    return {**split, "population": data.validation, "references": [reference]}
