"""Records (the JSON and text files that describe a run: audit.json, job.json, checkpoint states, cache keys, model
cards, splits) are written atomically: into a temporary file beside the target, flushed to disk, then renamed over
it, so a reader (or a run killed mid-write) sees the old file or the new one, never a part of either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, get_session

__all__ = ["hub_offline", "hub_reachable", "write_json_atomic", "write_text_atomic"]


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (temporary file + fsync + ``os.replace``)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | os.PathLike, content: Any, indent: int | None = 2) -> None:
    """Write ``content`` as JSON (plus a final newline) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(content, indent=indent) + "\n")


def hub_offline() -> bool:
    """Whether huggingface_hub's offline mode is on (``HF_HUB_OFFLINE=1``)."""
    return bool(constants.is_offline_mode())


def hub_reachable(repo_id: str | None = None, *, repo_type: str = "dataset", timeout: float = 5.0) -> bool:
    """True when the Hub answers within ``timeout`` seconds (for ``repo_id``: when that repo can be read).

    False in offline mode (``HF_HUB_OFFLINE=1``), without a network, or on any error; never raises.
    """
    if hub_offline():
        return False
    try:
        if repo_id is None:
            get_session().head(constants.ENDPOINT, timeout=timeout)
        else:
            HfApi().repo_info(repo_id, repo_type=repo_type, timeout=timeout)
    except Exception:
        return False
    return True
