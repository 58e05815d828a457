"""TOFU forget quality of ∇τ, GradDiff and NPO on one tiny-Llama run, against the model retrained without the
forget rows: the causal-LM example (``examples/unlearn_causal_lm.py --tiny --retrain``) once per method, the
fine-tuned and retrained models cached and shared by all methods, then one table.

    python benchmarks/tofu_forget_quality.py [--forget_samples 40] [extra example flags...]

Writes ``results/tofu_forget_quality.json`` and ``.md`` (aggregates only; forget quality = KS p-value of the
truth ratios on the forget rows vs the retrained model's; high = like retraining).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import unlearn_causal_lm  # noqa: E402

from hf_unlearn.io import write_text_atomic  # noqa: E402
from hf_unlearn.provenance import provenance  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("nabla_tau", "grad_diff", "npo")
KEYS = ("forget_quality", "forget_truth_ratio", "forget_answer_prob", "forget_rouge_l", "model_utility")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forget_samples", type=int, default=40, help="forget rows (the job's forget_rows)")
    p.add_argument("--max_train_samples", type=int, default=120, help="forget + retain rows fine-tuned on")
    p.add_argument("--output_dir", default=str(ROOT / "outputs" / "tofu_forget_quality"))
    p.add_argument("--out", type=Path, default=RESULTS)
    cfg, extra = p.parse_known_args()
    command = " ".join(["python"] + sys.argv)
    rows = {}
    for method in METHODS:
        # one output_dir for all methods, so they share the cached original and retrained models; each method's
        # unlearned model replaces the previous one's (its audit is read right after)
        start = time.perf_counter()
        unlearn_causal_lm.main(["--tiny", "--retrain", "--method", method, "--forget_rows", str(cfg.forget_samples),
                                "--train_rows", str(cfg.max_train_samples - cfg.forget_samples),
                                "--output_dir", cfg.output_dir, "--overwrite_output_dir", *extra])
        result = json.loads((Path(cfg.output_dir) / "audit.json").read_text())  # the job's audit (aggregates)
        tofu = result["tofu"]
        rows.setdefault("original", tofu["original"])
        rows.setdefault("retrained", tofu["retrained"])
        rows[method] = {**tofu["unlearned"], "wall_s": time.perf_counter() - start}
    sizes = result["sizes"]
    lines = ["# TOFU forget quality: ∇τ vs GradDiff vs NPO (tiny Llama)", "", f"`{command}`", "",
             f"Random tiny Llama (2 layers × 64, byte tokenizer) fine-tuned on TOFU forget10 + retain90 rows "
             f"(sizes {sizes}), retrained on the retain rows only; each method unlearns from the same fine-tuned "
             "model with the example's --tiny defaults. Forget quality: KS p-value of the forget rows' truth ratios vs "
             "the retrained model's (high = like retraining).", "",
             "| model | " + " | ".join(KEYS) + " |", "|---|" + "---:|" * len(KEYS)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r.get(k, float('nan')):.4g}" for k in KEYS) + " |")
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.out / "tofu_forget_quality.json", json.dumps({"command": command, "sizes": sizes,
                                                                  "provenance": provenance(), "models": rows},
                                                                 indent=2))
    write_text_atomic(cfg.out / "tofu_forget_quality.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(" ".join(f"forget_quality_{m}={rows[m]['forget_quality']:.4g}" for m in METHODS))


if __name__ == "__main__":
    main()
