"""Unlearning state in checkpoints: written last and atomically, with a manifest of content hashes and the job's
fingerprint.

A checkpoint folder counts as complete only once ``unlearning_state.json`` exists: it is written after every other
file (model, optimizer, scheduler, RNG, trainer state) and records their sizes and SHA-256 hashes (and its own
hash, so an edited τ is caught too), so a run killed mid-save, a truncated file or a flipped byte leaves a folder
that resuming skips (``last_complete_checkpoint``, with a warning naming it) or rejects with a clear error
(``read_state``). The state also holds the job's fingerprint (``hf_unlearn.trainer.fingerprint``): a checkpoint resumes
only the job that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..io import write_json_atomic
from .fingerprint import job_differences

logger = logging.getLogger(__name__)

STATE_NAME = "unlearning_state.json"
STATE_HASH = "state_sha256"  # the state's hash of itself (older checkpoints have none)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _manifest(folder: str) -> dict[str, dict[str, Any]]:
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name == STATE_NAME or name.startswith(f".{STATE_NAME}"):
                continue
            path = os.path.join(root, name)
            files[os.path.relpath(path, folder)] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    return files


def _state_sha256(state: dict[str, Any]) -> str:
    """SHA-256 of the state itself (canonical JSON, less this hash): an edit of τ or the manifest is detected."""
    content = {k: v for k, v in state.items() if k != STATE_HASH}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def write_state(folder: str, state: dict[str, Any]) -> None:
    """Write the unlearning state plus the manifest of the folder's files and the state's own hash, atomically."""
    content = {**state, "manifest": _manifest(folder)}
    content[STATE_HASH] = _state_sha256(content)
    write_json_atomic(os.path.join(folder, STATE_NAME), content)


def read_state(folder: str) -> dict[str, Any]:
    """The unlearning state of a complete checkpoint; ``FileNotFoundError``/``ValueError`` say what is wrong."""
    path = os.path.join(folder, STATE_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: {folder!r} is not a complete UnlearningTrainer checkpoint (the run may have been "
            "killed while saving it). Resume from an earlier checkpoint-* folder or with resume_from_checkpoint=True."
        )
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if not isinstance(state, dict):
            raise ValueError(f"a JSON {type(state).__name__}, not an object")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} is not a valid unlearning state ({err}); resume from an earlier checkpoint."
                         ) from None
    if STATE_HASH in state and state[STATE_HASH] != _state_sha256(state):
        raise ValueError(f"Checkpoint {folder!r} is damaged: {STATE_NAME} is changed (its SHA-256 differs from the "
                         "one saved: τ, the job or the manifest was edited). Resume from an earlier checkpoint-* "
                         "folder.")
    for name, expected in (state.get("manifest") or {}).items():
        file = os.path.join(folder, name)
        expected = expected if isinstance(expected, dict) else {"size": expected}  # older manifests: sizes only
        actual = os.path.getsize(file) if os.path.isfile(file) else None
        if actual != expected.get("size"):
            found = "missing" if actual is None else f"{actual} bytes, expected {expected.get('size')}"
        elif "sha256" in expected and _sha256(file) != expected["sha256"]:
            found = "changed (its SHA-256 differs from the one saved)"
        else:
            continue
        raise ValueError(
            f"Checkpoint {folder!r} is damaged: {name} is {found} (truncated or changed after saving). Resume "
            "from an earlier checkpoint-* folder."
        )
    return state


def check_same_job(folder: str, state: dict[str, Any], job: dict[str, Any] | None) -> None:
    """``ValueError`` naming what differs when the checkpoint in ``folder`` was written by another job."""
    differences = job_differences(state.get("job"), job) if job else []
    if differences:
        raise ValueError(
            f"Checkpoint {folder!r} belongs to another job: {'; '.join(differences)}. Resume it with the same data "
            "and arguments, or start this job in another output_dir (or without resume_from_checkpoint)."
        )


def checkpoint_folders(output_dir: str) -> list[str]:
    """The checkpoint-* folders of ``output_dir``, highest step first."""
    if not os.path.isdir(output_dir):
        return []
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    steps = sorted((int(m.group(1)), name) for name in os.listdir(output_dir) if (m := pattern.match(name)))
    return [os.path.join(output_dir, name) for _, name in reversed(steps)]


def last_complete_checkpoint(output_dir: str, job: dict[str, Any] | None = None) -> str | None:
    """The highest-step checkpoint whose state is complete and intact (and, given ``job``, written by that job),
    or ``None``. Damaged checkpoints and those of other jobs are skipped with a warning naming them."""
    for folder in checkpoint_folders(output_dir):
        if not os.path.isfile(os.path.join(folder, STATE_NAME)):
            continue  # being written, or killed while being written: not a checkpoint yet
        try:
            check_same_job(folder, read_state(folder), job)
        except ValueError as err:
            logger.warning("Skipping %s. %s", os.path.basename(folder), err)
            continue
        return folder
    return None
