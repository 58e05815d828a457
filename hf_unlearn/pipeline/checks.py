"""A job's checks before its first write (`hf_unlearn.pipeline.run.run_job`, `audit_job`): the resume flag as given on
the command line, the output_dir guard (another job's model is never replaced without ``overwrite_output_dir``), and a
saved model made for the job's task and labels. Each error is one line naming the input and the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..trainer.persistence import holds_model
from .job import read_description


def resume_value(value: Any) -> str | bool | None:
    """``resume_from_checkpoint`` as given on the command line: true/last (the last intact checkpoint of this job),
    false/none/empty (start afresh), or a checkpoint folder."""
    if value is None or isinstance(value, bool):
        return value or None
    text = str(value).strip()
    if text.lower() in ("true", "yes", "1", "last"):
        return True
    if text.lower() in ("", "false", "no", "0", "none"):
        return None
    if not os.path.isdir(text):
        raise FileNotFoundError(f"resume_from_checkpoint={text!r}: no such checkpoint folder. Pass a checkpoint-* "
                                "folder, or true to resume from the last intact checkpoint in output_dir.")
    return text


def guard_output_dir(output_dir: str, description: dict[str, Any], args: Any, resume: Any) -> None:
    """Before any write: a folder holding another job's model is replaced only with overwrite_output_dir."""
    if not holds_model(output_dir) or args.overwrite_output_dir or resume:
        return
    previous = read_description(output_dir)
    if previous is None:
        differ = ["no job.json"]
    else:
        differ = [k for k in description if previous.get(k) != description[k] and k != "job"]
        differ += [k for k in description["job"] if (previous.get("job") or {}).get(k) != description["job"][k]]
    if differ:
        raise ValueError(f"output_dir={output_dir!r} already holds a model saved by another job (it differs in: "
                         f"{', '.join(differ)}). Pass --overwrite_output_dir to replace it, or choose another "
                         "--output_dir.")


def check_model_fits(path: str, task: str, num_labels: int | None, what: str) -> None:
    """``ValueError`` (one line) when the saved model in ``path`` was made for another task or label count than the
    job's data (instead of an internal error deep in the audit)."""
    try:
        config = json.loads(Path(path, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not a local model folder: the loader says what is wrong
    heads = {"causal_lm": "ForCausalLM", "image_classification": "ForImageClassification"}
    head = heads.get(task, "ForSequenceClassification")
    architectures = config.get("architectures") or []
    labels = len(config.get("id2label") or {}) or config.get("num_labels")
    multi = config.get("problem_type") == "multi_label_classification"
    wrong = [f"architecture {', '.join(architectures)}"] if architectures and not any(
        a.endswith(head) for a in architectures) else []
    if task in ("single_label", "multi_label", "image_classification") and num_labels and labels \
            and labels != num_labels:
        wrong.append(f"{labels} labels, not the data's {num_labels}")
    if task in ("single_label", "multi_label") and multi != (task == "multi_label") and not wrong:
        wrong.append(f"problem_type {config.get('problem_type')!r}")
    if wrong:
        raise ValueError(f"{what} {path!r} was not made for this job's data (task {task}): {'; '.join(wrong)}. "
                         "Audit it with the config of the run that made it.")
