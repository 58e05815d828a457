"""A per-job secret salt, so that the digests in a job's pushed records (``job.json``, ``audit.json``) reveal nothing.

A job records its forget selection only as digests (which classes, which rows), so that ``hf-unlearn audit`` can check
that a config names the same forget set. An unsalted digest would let anyone holding the pushed folder confirm a
guess (hash each label name of ``config.json``'s ``id2label``, or a guessed set of rows). The digests are therefore
HMACs under a random salt that stays in the run's own folder (``_hf_unlearn_salt``: ``_*`` files are never pushed):
the local folder can check a config, a downloaded copy cannot confirm anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SALT_NAME = "_hf_unlearn_salt"
PREFIX = "hmac-sha256:"


def read_salt(folder: str | os.PathLike) -> str | None:
    """The salt kept in ``folder`` (None when there is none: e.g. a copy downloaded from the Hub)."""
    path = Path(folder, SALT_NAME)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def new_salt() -> str:
    return secrets.token_hex(32)


def salted(salt: str, text: str) -> str:
    """The HMAC-SHA256 of ``text`` under ``salt``."""
    return PREFIX + hmac.new(salt.encode(), text.encode(), hashlib.sha256).hexdigest()


def digest_matches(recorded: str | None, text: str, salt: str | None) -> bool | None:
    """Whether the recorded digest is that of ``text``; None when it cannot be told (no salt here). Records written
    before the salt (``sha256:`` of the text, or a bare digest) are compared as they are."""
    if recorded is None:
        return None
    if recorded.startswith(PREFIX):
        return None if salt is None else hmac.compare_digest(recorded, salted(salt, text))
    if recorded.startswith("sha256:"):
        return recorded == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return recorded == text
