"""Where ∇τ's relabel push loses accuracy on unseen rows: the class balance of the predictions.

On one benchmark setting (GoEmotions, ``--fraction`` forgotten, dev rows by default) this runs ∇τ's relabel push without
the prior repair, its default (the repair to the retain set's class shares, α₀ 0.6) and the repair to the original's
prior (``prior_target="original"``) from the cached original and compares, on the audit rows (never
the τ rows the repair is fitted on), each model's accuracy, the share of its predictions that go to the majority
class of those rows, and the total variation distance between its predicted-class histogram and the original's; the
retrained model (the gold standard) beside them. Aggregates only: no row, id or label of the forget set is written.

    python benchmarks/class_balance.py --data_dir ../shared/data/goemotions --fraction 0.3 --seeds 0 1 2 \
        --cache_dir benchmarks/cache --out benchmarks/results/class_balance

Writes ``<out>/class_balance.json`` and ``<out>/class_balance.md`` (means ± 95 % CI over seeds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goemotions as bench  # noqa: E402
from _diagnostics import ci_cells, meta, parser, seed_models, setting  # noqa: E402
from summary import header_lines  # noqa: E402

from hf_unlearn.audit import model_outputs  # noqa: E402

RUNS = {"∇τ relabel push, no repair": {"method": "nabla_tau", "prior_repair": False},
        "∇τ default (repair to the retain shares, α₀ 0.6)": {"method": "nabla_tau"},
        "∇τ + repair to the original's prior, α₀ 0.6": {"method": "nabla_tau", "prior_target": "original"}}


def predictions(model, rows, collator) -> np.ndarray:
    return model_outputs(model, rows, data_collator=collator, batch_size=128)[0].argmax(-1)


def balance(pred: np.ndarray, labels: np.ndarray, reference: np.ndarray, classes: int) -> dict:
    majority = np.bincount(labels, minlength=classes).argmax()
    hist = np.bincount(pred, minlength=classes) / len(pred)
    ref = np.bincount(reference, minlength=classes) / len(reference)
    return {"accuracy": float((pred == labels).mean()), "majority_share": float((pred == majority).mean()),
            "tv_from_original": float(0.5 * np.abs(hist - ref).sum())}


def main(argv=None) -> None:
    own, extra = parser(__doc__, "benchmarks/results/class_balance", [0, 1, 2], 0.3).parse_known_args(argv)
    args = setting(own, extra)
    s = bench._setup(bench._key(args))
    audit_rows, collator, classes = s["test"], s["collator"], s["labels"][1]
    labels = np.array(audit_rows["labels"])
    reference = None
    records = []
    for seed, _, _, models in seed_models(args, own, RUNS):
        for label, (model, trainer) in models.items():
            pred = predictions(model, audit_rows, collator)
            reference = pred if reference is None else reference  # the original's, the first model of every seed
            records.append({"model": label, "seed": seed, "prior_shift": trainer and trainer.prior_shift,
                            **balance(pred, labels, reference, classes)})
            print(f"[seed {seed}] {label:30s} {records[-1]}", flush=True)
    write(Path(own.out), records, meta(own, argv), own)


def write(out: Path, records: list[dict], meta: dict, own) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "class_balance.json").write_text(json.dumps({"provenance": meta, "records": records}, indent=1))
    lines = header_lines(meta, "Class balance of the predictions on unseen rows")
    keys = ["accuracy", "majority_share", "tv_from_original", "prior_shift"]
    lines += [f"Setting: GoEmotions, {round(own.fraction * 100)}% forgotten, {own.eval_split} rows (the audit rows: "
              "never the τ rows the prior repair is fitted on); mean ± 95 % CI over seeds "
              f"{', '.join(map(str, own.seeds))}. `majority_share`: the share of predictions that go to the "
              "majority class of these rows; `tv_from_original`: total variation distance between the predicted-"
              "class histogram and the original's; `prior_shift`: the largest output-bias shift of the repair.", "",
              "| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for model in dict.fromkeys(r["model"] for r in records):
        lines.append(f"| {model} | " + " | ".join(ci_cells([r for r in records if r["model"] == model], keys)) + " |")
    (out / "class_balance.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
