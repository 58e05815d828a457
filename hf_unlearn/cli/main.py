"""`hf-unlearn`: unlearn from a YAML job config, audit a model, or write a forget/retain split.

    hf-unlearn run configs/goemotions_minilm.yaml [--key value ...]
    hf-unlearn audit --model outputs/goemotions_minilm --original outputs/goemotions_minilm/_original
    hf-unlearn split --config configs/goemotions_minilm.yaml --out split.json

Errors end with a non-zero exit and one line on stderr (``--debug`` shows the traceback). The comparison table
is the only thing printed on stdout; progress goes to the log (stderr).

The dispatcher loads a subcommand's module (`hf_unlearn.cli.run`, `.audit`, `.split`: each a ``main(argv)``) only
when that subcommand runs, so ``hf-unlearn --help`` answers without loading torch; every subcommand's errors go
through the one wrapper below.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (its module, one line of help)
COMMANDS = {"run": ("hf_unlearn.cli.run", "Unlearn from a YAML job config, audit, save, push."),
            "audit": ("hf_unlearn.cli.audit", "Audit an existing model on a config's forget/test split."),
            "split": ("hf_unlearn.cli.split", "Write a forget/retain split as ids only.")}


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
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
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
