"""What the example scripts share: a parser whose ``--help`` starts with what the script does and lists the script's
own options (not the ~200 ``TrainingArguments`` ones: ``--help_all`` shows those), and user errors as one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

import datasets
import transformers
from transformers import TrainingArguments

from ..pipeline.config import ArgParser, CLIError

__all__ = ["SHOWN_TRAINING_OPTIONS", "quiet_libraries", "raise_cli_error", "run_script", "script_parser",
           "setup_logging"]

#: ``TrainingArguments`` options a script's ``--help`` still lists (every other one works but is listed by
#: ``--help_all`` only).
SHOWN_TRAINING_OPTIONS = (
    "output_dir", "seed", "learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "num_train_epochs", "max_steps", "logging_steps", "save_strategy", "save_steps",
    "bf16", "fp16", "use_cpu", "report_to", "disable_tqdm", "push_to_hub", "hub_model_id", "hub_token",
    "hub_private_repo",
)
#: ``UnlearningArguments`` options for causal LMs only: a script's ``--help`` leaves them to ``--help_all``
CAUSAL_LM_ONLY_OPTIONS = ("token_mean",)


class _ScriptParser(ArgParser):
    """`ArgParser` (errors raise `CLIError`) whose help text opens with the script's description."""

    def __init__(self, *args: Any, doc: str = "", **kwargs: Any) -> None:
        self._doc = doc.strip()
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        return f"{self._doc}\n\n{super().format_help()}"


def script_parser(dataclass_types: Sequence[type], doc: str | None, argv: Sequence[str] | None = None,
                  prog: str | None = None, brief: Sequence[str] | None = None,
                  causal_lm: bool = False) -> ArgParser:
    """An ``HfArgumentParser`` for an example script: ``--help`` prints ``doc`` first, then a one-line usage and the
    script's options (of the first dataclass only those named in ``brief``, when given); ``--help_all`` (in
    ``argv``) lists every option; the causal-LM-only ones are listed when ``causal_lm``. Parse errors raise
    `CLIError` (one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _ScriptParser(dataclass_types, prog=prog, doc=doc or "",
                           usage="%(prog)s [--option value ...]  (--help: the script's options, --help_all: all)")
    if "--help_all" in argv:
        parser.add_argument("--help_all", action="help", help="Show every option, TrainingArguments' included.")
        return parser
    parser.add_argument("--help_all", action="help", help="Also list the ~200 TrainingArguments options.")
    own = {f.name for t in dataclass_types for f in fields(t) if f.name in getattr(t, "__annotations__", {})}
    hidden = {f.name for f in fields(TrainingArguments)} - own - set(SHOWN_TRAINING_OPTIONS)
    if not causal_lm:
        hidden |= set(CAUSAL_LM_ONLY_OPTIONS)
    if brief is not None:
        hidden |= {f.name for f in fields(dataclass_types[0])} - set(brief)
    for action in parser._actions:
        if action.dest in hidden:
            action.help = argparse.SUPPRESS
    return parser


def quiet_libraries() -> None:
    """Less output around a job: datasets' per-split bars ("Map", "Casting the dataset") and transformers' weight
    loading/saving bars off (the Trainer's training bar stays), and no CPU-only ``pin_memory`` warning."""

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator")


def run_script(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)`` and exit: user errors (bad options, values, missing files or models, the Hub pre-flight)
    print one line ``error: ...`` and exit 2; ``--debug`` shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    quiet_libraries()
    try:
        main(argv)
    except KeyboardInterrupt:
        sys.exit(130)
    except (CLIError, ValueError, FileNotFoundError, OSError) as err:
        if debug:
            raise
        text = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"error: {text} (--debug shows the traceback)", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)


def setup_logging(verbose: bool) -> None:
    """A subcommand's logging: quiet libraries, then INFO (``verbose``) or WARNING messages on stderr."""
    quiet_libraries()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr)


def raise_cli_error(message: str) -> None:
    """``argparse.ArgumentParser.error`` for the subcommands: a `CLIError` (one line), not an exit."""
    raise CLIError(message)
