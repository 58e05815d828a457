"""hf-unlearn: make a trained Hugging Face model forget part of its training data (∇τ, arXiv 2403.14339)."""

from .arguments import UnlearningArguments
from .audit import audit_model, compare
from .data import (
    ClassificationCollator,
    bundled_sample_dir,
    label_names,
    load_data,
    load_goemotions,
    select_forget,
    tokenize_classification,
)
from .hub import check_hub_access
from .recipes import FinetuneRecipe, finetune, load_text_classifier, unlearn
from .trainer import UnlearningTrainer

__version__ = "0.1.0"

__all__ = [
    "ClassificationCollator",
    "FinetuneRecipe",
    "UnlearningArguments",
    "UnlearningTrainer",
    "__version__",
    "audit_model",
    "bundled_sample_dir",
    "check_hub_access",
    "compare",
    "finetune",
    "label_names",
    "load_data",
    "load_goemotions",
    "load_text_classifier",
    "select_forget",
    "tokenize_classification",
    "unlearn",
]
