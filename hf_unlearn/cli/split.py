"""``hf-unlearn split``: write a forget/retain split of the training rows as ids only."""

from __future__ import annotations

import argparse
import logging

from ..pipeline.config import CLIError, load_job
from ..pipeline.job import JobArguments
from ..pipeline.run import write_split
from .scripts import raise_cli_error, setup_logging

logger = logging.getLogger("hf_unlearn.cli")


def main(argv: list[str]) -> int:
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
    parser.error = raise_cli_error  # type: ignore[method-assign]
    ns = parser.parse_args(argv)
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
    setup_logging(False)
    ids = write_split(job, ns.task or task, seed, ns.out)
    logger.warning("Wrote %d forget and %d retain ids to %s.", len(ids["forget"]), len(ids["retain"]), ns.out)
    return 0
