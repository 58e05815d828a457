"""What made a result: the code's commit, the command, seeds, threads, versions and the machine; weight hashes.

Results files (benchmarks, job descriptions) embed :func:`provenance` so that every number can be traced to the
code and command that produced it, and re-run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch


def git_commit(path: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git work tree holding ``path`` (default: here);
    result files a benchmark rewrote (``benchmarks/results``) are not code changes, so they do not make it dirty."""
    cwd = Path(path or Path(__file__).parent).resolve()
    cwd = cwd if cwd.is_dir() else cwd.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ":(top,exclude)benchmarks/results") if commit \
        else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> str:
    """CPU model, core count, torch version and threads, Python version, in one line."""
    return (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "datasets", "accelerate", "peft", "scikit-learn", "numpy", "hf-unlearn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def redact(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` with the values of ``flags`` (``--flag v1 v2`` or ``--flag=v``) replaced by ``<redacted>``."""
    out, hiding = [], False
    for arg in argv:
        name, eq, _ = arg.partition("=")
        if name in flags:
            out.append(f"{name}=<redacted>" if eq else arg)
            hiding = not eq
            if hiding:
                out.append("<redacted>")
        elif not (hiding and not arg.startswith("--")):
            out.append(arg)
            hiding = False
    return out


def provenance(argv: list[str] | None = None, *, seeds: list[int] | None = None, code: str | Path | None = None,
               hide: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """Everything needed to trace a result to what made it: commit (``dirty`` when the tree had uncommitted
    changes), the full command (values of the ``hide`` flags redacted), seeds, torch threads, versions, machine and
    UTC date; ``extra`` is merged in."""
    argv = redact(list(sys.argv if argv is None else argv), hide)
    return {
        **git_commit(code),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *argv]),
        "seeds": seeds,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "machine": machine(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        **extra,
    }


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes, in name order): equal iff bit-identical."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
