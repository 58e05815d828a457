"""hf-unlearn: make a trained Hugging Face model forget part of its training data (∇τ, arXiv 2403.14339)."""

from .arguments import UnlearningArguments
from .audit import audit_model
from .data import select_forget
from .trainer import UnlearningTrainer

__version__ = "0.1.0"

__all__ = ["UnlearningArguments", "UnlearningTrainer", "audit_model", "select_forget", "__version__"]
