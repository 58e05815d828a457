"""``hf-unlearn audit --model DIR``: audit a model on the forget and test rows of the run that made it."""

from __future__ import annotations

import argparse
import contextlib
import sys

from ..pipeline.config import CLIError, load_job
from ..pipeline.job import DESCRIPTION
from ..pipeline.models import require_local
from ..pipeline.run import audit_job
from .scripts import raise_cli_error, setup_logging


def main(argv: list[str]) -> int:
    """``hf-unlearn audit --model DIR [--original PATH] [--retrained PATH] [--config CONFIG.yaml]``."""
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
    parser.error = raise_cli_error  # type: ignore[method-assign]
    ns, overrides = parser.parse_known_args(argv)
    for flag in ("model", "original", "retrained"):
        if getattr(ns, flag):
            require_local(getattr(ns, flag), f"--{flag}")
    if overrides and not ns.config:
        raise CLIError(f"{overrides[0]}: the job comes from the model's {DESCRIPTION}; options that change it need "
                       "--config (and must agree with the recorded job).")
    job, args = load_job(ns.config, overrides) if ns.config else (None, None)
    setup_logging(bool(args and args.should_log))
    with contextlib.redirect_stdout(sys.stderr):
        table = audit_job(ns.model, job, args, original=ns.original, retrained=ns.retrained, out=ns.out)
    print(table)
    return 0
