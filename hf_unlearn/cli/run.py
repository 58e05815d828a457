"""``hf-unlearn run CONFIG.yaml [--key value ...]``: unlearn from a YAML job config, audit, save, push."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from ..pipeline.config import CLIError, job_parser, load_job, read_config
from ..pipeline.job import MAIN_JOB_OPTIONS, JobArguments
from ..pipeline.run import run_job
from ..trainer.arguments import UnlearningArguments
from .scripts import script_parser, setup_logging

logger = logging.getLogger("hf_unlearn.cli")

RUN_HELP = ("Unlearn from a YAML job config: load model and data, select the forget set, train the original model "
            "if needed, unlearn, audit original vs unlearned (vs retrained with --retrain), save model + README.md "
            "card + audit.json + plots to --output_dir, push with --push_to_hub. Every config key can be "
            "overridden as --key value. Add --debug for tracebacks.")


def main(argv: list[str]) -> int:
    """``hf-unlearn run CONFIG.yaml [--key value ...]``."""
    if any(a in ("-h", "--help", "--help_all") for a in argv):  # the job's options; --help_all: every one
        doc = f"hf-unlearn run CONFIG.yaml [--key value ...]\n\n{RUN_HELP}"
        brief = (*MAIN_JOB_OPTIONS, "dataset", "tokenizer", "data_files", "text_column", "label_column", "model_config")
        script_parser((JobArguments, UnlearningArguments), doc, argv, prog="hf-unlearn run CONFIG.yaml",
                      brief=brief).print_help()
        return 0
    parser = job_parser("hf-unlearn run", RUN_HELP)
    parser.add_argument("config", help="YAML job config: flat or sectioned mapping of the options below.")
    if not argv or argv[0].startswith("-"):
        raise CLIError("run needs the config first: hf-unlearn run CONFIG.yaml [--key value ...].")
    read_config(argv[0])  # a missing or malformed config fails before the defaults below
    parser.set_defaults(output_dir=os.path.join("outputs", Path(argv[0]).stem), report_to="none", disable_tqdm=True)
    job, args = load_job(argv[0], argv, parser)  # run_job checks the Hub first when pushing, before any work
    setup_logging(args.should_log)
    with contextlib.redirect_stdout(sys.stderr):  # Trainer's prints go to the log; stdout holds the table only
        table = run_job(job, args, say=lambda text: logger.info(text.strip()), show_table=False)
    print(table)
    return 0
