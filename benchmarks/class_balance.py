"""Where ∇τ's relabel push loses accuracy on unseen rows: the class balance of the predictions.

On one benchmark setting (GoEmotions, ``--fraction`` forgotten, dev rows by default) this runs ∇τ's default and ∇τ
with the prior repair (``prior_repair=True, alpha=0.6``) from the cached original and compares, on the audit rows (never
the τ rows the repair is fitted on), each model's accuracy, the share of its predictions that go to the majority
class of those rows, and the total variation distance between its predicted-class histogram and the original's; the
retrained model (the gold standard) beside them. Aggregates only: no row, id or label of the forget set is written.

    python benchmarks/class_balance.py --data_dir ../shared/data/goemotions --fraction 0.3 --seeds 0 1 2 \
        --cache_dir benchmarks/cache --out benchmarks/results/class_balance

Writes ``<out>/class_balance.json`` and ``<out>/class_balance.md`` (means ± 95 % CI over seeds).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goemotions as bench  # noqa: E402
from summary import header_lines, mean_ci  # noqa: E402

from hf_unlearn.provenance import provenance  # noqa: E402

RUNS = {"∇τ default (relabel push)": {"method": "nabla_tau"},
        "∇τ + prior repair, α₀ 0.6": {"method": "nabla_tau", "prior_repair": True, "alpha": 0.6}}


def predictions(model, rows, collator) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), 128):
            batch = collator([rows[j] for j in range(i, min(len(rows), i + 128))])
            batch.pop("labels", None)
            out.append(model(**batch).logits.argmax(-1))
    return torch.cat(out).numpy()


def balance(pred: np.ndarray, labels: np.ndarray, reference: np.ndarray, classes: int) -> dict:
    majority = np.bincount(labels, minlength=classes).argmax()
    hist = np.bincount(pred, minlength=classes) / len(pred)
    ref = np.bincount(reference, minlength=classes) / len(reference)
    return {"accuracy": float((pred == labels).mean()), "majority_share": float((pred == majority).mean()),
            "tv_from_original": float(0.5 * np.abs(hist - ref).sum())}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--fraction", type=float, default=0.3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval_split", default="validation", choices=["validation", "test"])
    p.add_argument("--cache_dir", default="benchmarks/cache")
    p.add_argument("--out", default="benchmarks/results/class_balance")
    p.add_argument("--quick", action="store_true", help="A smoke test: goemotions.py's --quick setting (tiny model).")
    own = p.parse_args(argv)
    name = f"{round(own.fraction * 100)}%"
    args = bench.parse_args(["--data_dir", own.data_dir, "--fractions", str(own.fraction), "--seeded_fractions",
                             str(own.fraction), "--seeds", *map(str, own.seeds), "--forget_class", "",
                             "--eval_split", own.eval_split, "--cache_dir", own.cache_dir, "--out", own.out,
                             *(["--quick"] if own.quick else [])])
    s = bench._setup(bench._key(args))
    audit_rows, collator, classes = s["test"], s["collator"], s["labels"][1]
    labels = np.array(audit_rows["labels"])
    original, _ = bench.trained(args, "original", None, args.original_seed)
    state = copy.deepcopy(original.state_dict())
    reference = predictions(original, audit_rows, collator)
    records = []
    for seed in own.seeds:
        selector = {"forget_fraction": own.fraction}
        forget, retain = bench.split_rows(args, selector, seed)
        retrained, _ = bench.trained(args, f"retrain-{name}-{seed}", selector, seed)
        models = {"original (do nothing)": (original, None), "retrained": (retrained, None)}
        for label, overrides in RUNS.items():
            model, trainer, _, _ = bench.unlearn_run(args, overrides, forget, retain, seed, state,
                                                     Path(own.out) / "work" / f"{name}-{seed}" / str(len(models)))
            models[label] = (model, trainer.prior_shift)
        for label, (model, shift) in models.items():
            records.append({"model": label, "seed": seed, "prior_shift": shift,
                            **balance(predictions(model, audit_rows, collator), labels, reference, classes)})
            print(f"[{name} seed {seed}] {label:30s} {records[-1]}", flush=True)
    meta = provenance([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], seeds=own.seeds,
                      code=Path(__file__).resolve().parent, settings=vars(own))
    write(Path(own.out), records, meta, own, name)


def write(out: Path, records: list[dict], meta: dict, own, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "class_balance.json").write_text(json.dumps({"provenance": meta, "records": records}, indent=1))
    lines = header_lines(meta, "Class balance of the predictions on unseen rows")
    lines += [f"Setting: GoEmotions, {name} forgotten, {own.eval_split} rows (the audit rows: never the τ rows the "
              "prior repair is fitted on); mean ± 95 % CI over seeds "
              f"{', '.join(map(str, own.seeds))}. `majority_share`: the share of predictions that go to the "
              "majority class of these rows; `tv_from_original`: total variation distance between the predicted-"
              "class histogram and the original's; `prior_shift`: the largest output-bias shift of the repair.", "",
              "| model | accuracy | majority_share | tv_from_original | prior_shift |", "|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in records):
        rows = [r for r in records if r["model"] == model]
        cells = []
        for key in ("accuracy", "majority_share", "tv_from_original", "prior_shift"):
            values = [r[key] for r in rows if r[key] is not None]
            m, h, _ = mean_ci(values) if values else (None, None, 0)
            cells.append("" if m is None else f"{m:.3f} ± {h:.3f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    (out / "class_balance.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
