"""hf-unlearn: make a trained Hugging Face model forget part of its training data (∇τ, arXiv 2403.14339).

The names below are imported on first use (PEP 562), so ``hf-unlearn --help`` does not load torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the submodule that defines it
_EXPORTS = {
    "UnlearningArguments": ".trainer.arguments",
    "audit_model": ".audit",
    "compare": ".audit",
    "ClassificationCollator": ".data",
    "bundled_sample_dir": ".data",
    "label_names": ".data",
    "load_data": ".data",
    "load_goemotions": ".data",
    "select_forget": ".data",
    "tokenize_classification": ".data",
    "check_hub_access": ".hub.push",
    "FinetuneRecipe": ".pipeline.recipes",
    "finetune": ".pipeline.recipes",
    "load_text_classifier": ".pipeline.models",
    "unlearn": ".pipeline.recipes",
    "UnlearningTrainer": ".trainer.trainer",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hf_unlearn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
