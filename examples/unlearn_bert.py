"""Make a MiniLM (BERT) emotion classifier forget 15 % of its GoEmotions training rows with ∇τ, and audit it.

Trains the original model (cached in OUTPUT_DIR/_original; skipped with --original_model), picks the forget set
(--forget_fraction, --forget_classes or --forget_ids FILE), unlearns it (--method for the baselines), audits the
original and the unlearned model (and a model retrained on the retain set with --retrain), prints the audit table,
and saves model + model card + audit.json + plots + job.json to OUTPUT_DIR (--push_to_hub uploads them).

Defaults: configs/goemotions_minilm.yaml (the same job as `hf-unlearn run configs/goemotions_minilm.yaml`).
Data: --data_dir FOLDER (train.tsv, dev.tsv, test.tsv, labels.txt), else $HF_UNLEARN_DATA_DIR, else the Hub
(google-research-datasets/go_emotions), else (offline) the GoEmotions sample bundled with hf-unlearn.

    python examples/unlearn_bert.py                          # the demo (`make demo`)
    python examples/unlearn_bert.py --data_dir ../shared/data/goemotions --train_rows 2000 --retrain
    python examples/unlearn_bert.py --quick                  # a tiny smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path

from hf_unlearn import UnlearningArguments
from hf_unlearn.cli.scripts import run_script, script_parser
from hf_unlearn.pipeline.config import load_job
from hf_unlearn.pipeline.job import MAIN_JOB_OPTIONS, JobArguments
from hf_unlearn.pipeline.run import run_job

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "goemotions_minilm.yaml"


def main(argv: list[str]) -> None:
    parser = script_parser((JobArguments, UnlearningArguments), __doc__, argv, prog="unlearn_bert.py",
                           brief=MAIN_JOB_OPTIONS)
    job, args = load_job(CONFIG, argv, parser, report_to="none")
    run_job(job, args)


if __name__ == "__main__":
    run_script(main, sys.argv[1:])
