"""The cache of trained models: the original a job unlearns from and the model retrained on its retain set.

A cached model is a saved model folder (model + processor) plus ``hf_unlearn_recipe.json``: what made it (base
model, task, recipe, data settings, a digest of the rows it was trained on) and what it cost (wall and CPU
seconds). The job pipeline (`hf_unlearn.pipeline.job`) keeps its original in ``OUTPUT_DIR/_original`` and its retrained
reference in ``OUTPUT_DIR/_retrain``; the benchmark keeps one folder per model under ``--cache_dir``. A folder is
reused only when its recorded key matches the job's, so a change of recipe, data or rows trains again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..io import write_json_atomic
from .models import is_model_dir, new_base_model
from .recipes import finetune

RECIPE_FILE = "hf_unlearn_recipe.json"  # beside a cached original / retrained model: what made it


def recipe_fields(recipe: Any) -> dict[str, Any]:
    """A recipe as a cache key: its fields, less those left at None (so a field added with a None default keeps
    older caches valid)."""
    return {k: v for k, v in asdict(recipe).items() if v is not None}


def recipe_key(job: Any, task: str, recipe: Any, data_keys: tuple[str, ...]) -> dict[str, Any]:
    """What a cached model depends on besides its rows: base model, task, recipe and the job's ``data_keys``."""
    key = {"model": job.model, "model_config": job.model_config, "tokenizer": job.tokenizer, "task": task,
           "recipe": recipe_fields(recipe), "data": {k: getattr(job, k) for k in data_keys}}
    return json.loads(json.dumps(key))


def cache_matches(folder: str | os.PathLike, key: dict[str, Any], rows: str | None = None) -> bool:
    """Whether ``folder`` holds a model cached for ``key`` (and, when given, trained on the rows of digest ``rows``)."""
    info = Path(folder) / RECIPE_FILE
    if not (is_model_dir(str(folder)) and info.is_file()):
        return False
    saved = json.loads(info.read_text(encoding="utf-8"))
    return {k: saved.get(k) for k in key} == key and (rows is None or saved.get("rows") == rows)


def cached_seconds(folder: str | os.PathLike) -> tuple[float, float]:
    """(wall, CPU) seconds that training the cached model took (CPU = wall for caches that predate it)."""
    saved = json.loads(Path(folder, RECIPE_FILE).read_text(encoding="utf-8"))
    return saved["seconds"], saved.get("cpu_seconds", saved["seconds"])


def train_cached(job: Any, rows: Any, recipe: Any, folder: str | os.PathLike, key: dict[str, Any], labels: tuple,
                 *, collator: Any, processor: Any, seed: int, save: bool = True,
                 disable_tqdm: bool = True) -> tuple[Any, float, float]:
    """A new base model fine-tuned on ``rows`` with ``recipe``; saved to ``folder`` with its key when ``save``.
    Returns (model, wall seconds, process CPU seconds). ``labels`` = (task, num_labels, label names)."""
    model = new_base_model(job, *labels, seed, processor=processor)
    cpu = time.process_time()
    seconds = finetune(model, rows, recipe, output_dir=str(folder), data_collator=collator,
                       disable_tqdm=disable_tqdm)
    cpu = time.process_time() - cpu
    if save:
        Path(folder, RECIPE_FILE).unlink(missing_ok=True)  # a run killed while saving leaves no key: trained again
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        write_json_atomic(Path(folder, RECIPE_FILE), {**key, "seconds": seconds, "cpu_seconds": cpu})  # the key last
    return model, seconds, cpu
