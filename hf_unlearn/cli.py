"""`hf-unlearn`: unlearn from a YAML job config, audit a model, or write a forget/retain split.

    hf-unlearn run configs/goemotions_minilm.yaml [--key value ...]
    hf-unlearn audit --model outputs/goemotions_minilm --original outputs/goemotions_minilm/_original
    hf-unlearn split --config configs/goemotions_minilm.yaml --out split.json

Errors end with a non-zero exit and one line on stderr (``--debug`` shows the traceback). The comparison table
is the only thing printed on stdout; progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger("hf_unlearn.cli")

RUN_HELP = ("Unlearn from a YAML job config: load model and data, select the forget set, train the original model "
            "if needed, unlearn, audit original vs unlearned (vs retrained with --retrain), save model + README.md "
            "card + audit.json + plots to --output_dir, push with --push_to_hub. Every config key can be "
            "overridden as --key value. Add --debug for tracebacks.")


def _setup_logging(verbose: bool) -> None:
    from .scripts import quiet_libraries

    quiet_libraries()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr)


# ------------------------------------------------------------------------------------------- commands
def cmd_run(argv: list[str]) -> int:
    """``hf-unlearn run CONFIG.yaml [--key value ...]``."""
    from .cli_config import CLIError, job_parser, load_job, read_config
    from .jobs import run_job

    if any(a in ("-h", "--help", "--help_all") for a in argv):  # the job's options; --help_all: every one
        from .arguments import UnlearningArguments
        from .jobs import MAIN_JOB_OPTIONS, JobArguments
        from .scripts import script_parser

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
    _setup_logging(args.should_log)
    with contextlib.redirect_stdout(sys.stderr):  # Trainer's prints go to the log; stdout holds the table only
        table = run_job(job, args, say=lambda text: logger.info(text.strip()), show_table=False)
    print(table)
    return 0


def cmd_audit(argv: list[str]) -> int:
    """``hf-unlearn audit --model DIR [--original PATH] [--retrained PATH] [--config CONFIG.yaml]``."""
    from .jobs import DESCRIPTION

    parser = argparse.ArgumentParser(
        prog="hf-unlearn audit", description="Audit a model on the forget and test rows of the run that made it "
        f"(its {DESCRIPTION}: same data, sampling, seed and forget selection), print the comparison table, write "
        "audit.json. A model without a job description needs --config; a config that contradicts the recorded "
        "job (another selector, seed or data) is refused.")
    parser.add_argument("--model", required=True, help="The model to audit (folder written by run, or Hub id).")
    parser.add_argument("--config", help="A YAML job config: needed only for a model without a job description.")
    parser.add_argument("--original", help="Also audit this original model (before unlearning), for comparison.")
    parser.add_argument("--retrained", help="Also audit this model retrained on the retain set (gold standard); it "
                        "is also RMIA's reference model (per-example attack) for the others.")
    parser.add_argument("--out", default="audit.json", help="Where to write the JSON report (default: audit.json).")
    parser.epilog = "With --config, any other --key value overrides a config key, as in `hf-unlearn run`."
    parser.error = _raise  # type: ignore[method-assign]
    ns, overrides = parser.parse_known_args(argv)
    from .cli_config import CLIError, load_job
    from .jobs import audit_job
    from .models import require_local

    for flag in ("model", "original", "retrained"):
        if getattr(ns, flag):
            require_local(getattr(ns, flag), f"--{flag}")
    if overrides and not ns.config:
        raise CLIError(f"{overrides[0]}: the job comes from the model's {DESCRIPTION}; options that change it need "
                       "--config (and must agree with the recorded job).")
    job, args = load_job(ns.config, overrides) if ns.config else (None, None)
    _setup_logging(bool(args and args.should_log))
    with contextlib.redirect_stdout(sys.stderr):
        table = audit_job(ns.model, job, args, original=ns.original, retrained=ns.retrained, out=ns.out)
    print(table)
    return 0


def cmd_split(argv: list[str]) -> int:
    """``hf-unlearn split --config CONFIG.yaml --out FILE`` or ``--dataset ... --fraction/--classes/--ids``."""
    parser = argparse.ArgumentParser(
        prog="hf-unlearn split", description="Write a forget/retain split of the training rows as ids only (as "
        "`run` samples and selects them): one JSON file {\"forget\": [...], \"retain\": [...]}, or two files of one "
        "id per line (readable as forget_ids).")
    parser.add_argument("--config", help="YAML job config: data, sampling and forget selection as in run.")
    parser.add_argument("--dataset", help="Without --config: goemotions | tofu | mnist | digits | file/folder/Hub id.")
    parser.add_argument("--data_dir", help="Local folder of a registered dataset.")
    parser.add_argument("--task", help="single_label | multi_label | causal_lm | image_classification.")
    parser.add_argument("--fraction", type=float, help="Forget this seeded random fraction of the training rows.")
    parser.add_argument("--classes", nargs="+", help="Forget every row of these classes (names or ids).")
    parser.add_argument("--ids", help="Forget the ids listed in this file (one per line).")
    parser.add_argument("--id_column", help="Column holding the ids (default: id; row numbers when missing).")
    parser.add_argument("--train_rows", type=int, help="Sampled training rows as in run (default 1200; 0 = all).")
    parser.add_argument("--seed", type=int, help="Seed of sampling and selection (default: the config's, or 42).")
    parser.add_argument("--out", required=True, help="A .json file, or a folder for forget_ids.txt + retain_ids.txt.")
    parser.error = _raise  # type: ignore[method-assign]
    ns = parser.parse_args(argv)
    from .cli_config import CLIError, load_job
    from .jobs import JobArguments, write_split

    if ns.config:
        job, args = load_job(ns.config, [])
        seed, task = args.seed, args.task
    elif ns.dataset:
        job, seed, task = JobArguments(dataset=ns.dataset, data_dir=ns.data_dir), 42, None
    else:
        raise CLIError("Pass --config CONFIG.yaml or --dataset NAME.")
    for flag, key in (("fraction", "forget_fraction"), ("classes", "forget_classes"), ("ids", "forget_ids")):
        if getattr(ns, flag) is not None:
            for other in ("forget_fraction", "forget_classes", "forget_ids"):
                setattr(job, other, None)
            setattr(job, key, getattr(ns, flag))
    job.id_column = ns.id_column or job.id_column
    job.train_rows = job.train_rows if ns.train_rows is None else ns.train_rows
    seed = seed if ns.seed is None else ns.seed
    _setup_logging(False)
    ids = write_split(job, ns.task or task, seed, ns.out)
    logger.warning("Wrote %d forget and %d retain ids to %s.", len(ids["forget"]), len(ids["retain"]), ns.out)
    return 0


def _raise(message: str) -> None:
    from .cli_config import CLIError

    raise CLIError(message)


COMMANDS = {"run": (cmd_run, "Unlearn from a YAML job config, audit, save, push."),
            "audit": (cmd_audit, "Audit an existing model on a config's forget/test split."),
            "split": (cmd_split, "Write a forget/retain split as ids only.")}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hf-unlearn`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    top = argparse.ArgumentParser(prog="hf-unlearn", description=__doc__.split("\n\n")[0],
                                  epilog="Add --debug to any command to see the traceback of an error.")
    commands = top.add_subparsers(title="commands", metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        commands.add_parser(name, help=text)
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"hf-unlearn: error: unknown command '{argv[0]}'; choose one of {', '.join(COMMANDS)}.",
              file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]][0](argv[1:])
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # one line for the user; --debug shows the traceback
        if debug:
            raise
        text = (str(err).strip().splitlines() or [""])[0]
        known = type(err).__name__ == "CLIError" or isinstance(err, (ValueError, FileNotFoundError))
        print(f"hf-unlearn {argv[0]}: error: {text if known else f'{type(err).__name__}: {text}'}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
