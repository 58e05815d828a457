"""Pushing an unlearned model to the Hub: the pre-flight (a valid token, before any training) and what a push must
leave out (scratch folders, models trained on the forget set, partly unlearned checkpoints).
"""

from __future__ import annotations

from huggingface_hub import constants, get_token, whoami
from huggingface_hub.errors import HfHubHTTPError

from ..io import hub_offline

__all__ = ["LOGIN_HINT", "check_hub_access", "push_ignore_patterns"]

LOGIN_HINT = "run `hf auth login` or set HF_TOKEN"


def check_hub_access(token: str | None = None, *, timeout: float = 10.0) -> str:
    """Pre-flight for ``push_to_hub``, to call before any training: the Hub user name of a valid token.

    Raises ``ValueError`` with a one-line fix when offline mode is on, no token is found (``token``, ``HF_TOKEN``
    or the one saved by ``hf auth login``), the Hub cannot be reached, or the Hub rejects the token. Writes nothing.
    """
    if hub_offline():
        raise ValueError("push_to_hub needs the Hub but offline mode is on (HF_HUB_OFFLINE=1): unset it, or drop "
                         "--push_to_hub to save locally only.")
    token = token or get_token()
    if not token:
        raise ValueError(f"push_to_hub needs a Hugging Face token: {LOGIN_HINT} (or drop --push_to_hub).")
    try:
        info = whoami(token=token)
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise ValueError(f"The Hub rejected the token (HTTP {status}): {LOGIN_HINT} with a valid "
                             "write token.") from None
        raise ValueError(f"The Hub at {constants.ENDPOINT} answered HTTP {status} to the token check; try again "
                         "later, or drop --push_to_hub.") from None
    except Exception as err:  # network errors (httpx/requests/OSError): the Hub is not reachable
        raise ValueError(f"Cannot reach the Hub at {constants.ENDPOINT} ({type(err).__name__}) to push: check the "
                         "network, or drop --push_to_hub to save locally only.") from None
    return str(info.get("name") or "")


def push_ignore_patterns(include_checkpoints: bool = False) -> list[str]:
    """``upload_folder`` ignore patterns for pushing an unlearning ``output_dir``.

    Always skipped: ``_*`` (private scratch, e.g. the CLI's cached ``_original`` model, trained on the forget
    set) and the ``original/`` / ``retrain/`` folders written by ``examples/unlearn_bert.py`` (also trained with
    data the push must not carry, or simply not the unlearned model). ``checkpoint-*`` folders hold partly
    unlearned weights and are skipped unless ``include_checkpoints``. ``audit.json``, plots and the card are kept.
    """
    patterns = ["_*", "original/", "retrain/", "retrained/"]
    if not include_checkpoints:
        patterns += ["checkpoint-*", "*/checkpoint-*", "last-checkpoint/"]
    return patterns
