"""Unlearning state in checkpoints: written last and atomically, with a manifest that catches truncated files.

A checkpoint folder counts as complete only once ``unlearning_state.json`` exists: it is written after every other
file (model, optimizer, scheduler, RNG, trainer state) and records their sizes, so a run killed mid-save leaves a
folder that resuming skips (``last_complete_checkpoint``) or rejects with a clear error (``read_state``).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

STATE_NAME = "unlearning_state.json"


def _manifest(folder: str) -> dict[str, int]:
    sizes = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name == STATE_NAME or name.startswith(f".{STATE_NAME}"):
                continue
            path = os.path.join(root, name)
            sizes[os.path.relpath(path, folder)] = os.path.getsize(path)
    return sizes


def write_state(folder: str, state: dict[str, Any]) -> None:
    """Write the unlearning state plus the manifest of the folder's files, atomically (tmp file + rename)."""
    content = {**state, "manifest": _manifest(folder)}
    tmp = os.path.join(folder, f".{STATE_NAME}.tmp")
    with open(tmp, "w") as f:
        json.dump(content, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, STATE_NAME))


def read_state(folder: str) -> dict[str, Any]:
    """The unlearning state of a complete checkpoint; ``FileNotFoundError``/``ValueError`` say what is wrong."""
    path = os.path.join(folder, STATE_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing: {folder!r} is not a complete UnlearningTrainer checkpoint (the run may have been "
            "killed while saving it). Resume from an earlier checkpoint-* folder or with resume_from_checkpoint=True."
        )
    try:
        with open(path) as f:
            state = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); resume from an earlier checkpoint.") from None
    for name, size in state.get("manifest", {}).items():
        file = os.path.join(folder, name)
        actual = os.path.getsize(file) if os.path.isfile(file) else None
        if actual != size:
            found = "missing" if actual is None else f"{actual} bytes, expected {size}"
            raise ValueError(
                f"Checkpoint {folder!r} is damaged: {name} is {found} (truncated or changed after saving). Resume "
                "from an earlier checkpoint-* folder."
            )
    return state


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The checkpoint-* folder with the highest step that holds a complete unlearning state, or ``None``."""
    if not os.path.isdir(output_dir):
        return None
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    steps = sorted(
        (int(m.group(1)), name) for name in os.listdir(output_dir) if (m := pattern.match(name))
    )
    for _, name in reversed(steps):
        folder = os.path.join(output_dir, name)
        if os.path.isfile(os.path.join(folder, STATE_NAME)):
            return folder
    return None
