"""Which retain rows ∇τ's push erases: the rows the original fit that the unlearned model no longer predicts, by how
close each row is to the forget set, by how confidently the original fit it and by how rare its class is.

On one benchmark setting (``--fraction`` forgotten; GoEmotions by default, any other `goemotions.py` flag passed on,
e.g. ``--dataset banking77 --train_rows 300 --epochs 12 --val_rows 300 --test_rows 600``) this runs ∇τ's default
and ∇τ with the KL retain term (``retain_loss="kl"``: the lever aimed at the retain rows' fit) from the cached
original, with the retrained model (the gold standard) beside them. Over the retain rows the original predicts
correctly, the share each model gets wrong ("lost"), overall and in groups fixed by the original alone:

- ``near forget, quartile k``: quartiles of a row's highest cosine similarity to any forget row (the original's
  mean-pooled last hidden states), 1 = farthest;
- ``original's confidence, quartile k``: quartiles of the original's logit confidence on the row, 1 = least sure;
- ``rare classes``: rows of the classes holding the fewer retain rows (up to half of all retain rows), and the rest.

Aggregates only: no row, id or label is written.

    python benchmarks/retain_damage.py --data_dir ../shared/data/goemotions --fraction 0.15 --seeds 0 1 2 3 4 \
        --cache_dir benchmarks/cache --out benchmarks/results/retain_damage

Writes ``<out>/retain_damage.json`` and ``<out>/retain_damage.md`` (means ± 95 % CI over seeds).
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

from hf_unlearn.audit import logit_confidence, model_outputs  # noqa: E402

RUNS = {"∇τ default": {"method": "nabla_tau"}, "∇τ + KL retain term": {"method": "nabla_tau", "retain_loss": "kl"}}


def quartiles(values: np.ndarray) -> np.ndarray:
    """Each value's quartile, 1 (lowest) to 4."""
    return 1 + np.searchsorted(np.quantile(values, [0.25, 0.5, 0.75]), values, side="right")


def rare_classes(labels: np.ndarray) -> np.ndarray:
    """Whether each row's class is among the rarest classes that together hold at most half of the rows."""
    counts = np.bincount(labels)
    order = np.argsort(counts, kind="stable")
    rare = order[np.cumsum(counts[order]) <= len(labels) / 2]
    return np.isin(labels, rare)


def groups(original_logits, labels, retain_hidden, forget_hidden) -> dict[str, np.ndarray]:
    """The row groups, fixed by the original alone (see the module docstring)."""
    similarity = ((retain_hidden / np.linalg.norm(retain_hidden, axis=1, keepdims=True))
                  @ (forget_hidden / np.linalg.norm(forget_hidden, axis=1, keepdims=True)).T)
    near = quartiles(similarity.max(1))
    sure = quartiles(logit_confidence(original_logits, labels))
    rare = rare_classes(labels)
    out = {"all retain rows": np.ones(len(labels), bool)}
    out |= {f"near forget, quartile {k}": near == k for k in range(1, 5)}
    out |= {f"original's confidence, quartile {k}": sure == k for k in range(1, 5)}
    return out | {"rare classes": rare, "common classes": ~rare}


def main(argv=None) -> None:
    own, extra = parser(__doc__, "benchmarks/results/retain_damage", [0, 1, 2, 3, 4], 0.15).parse_known_args(argv)
    args = setting(own, extra)
    collator = bench._setup(bench._key(args))["collator"]
    records = []
    for seed, forget, retain, models in seed_models(args, own, RUNS):
        outputs = {label: model_outputs(model, retain, data_collator=collator, batch_size=128, pooled=i == 0)
                   for i, (label, (model, _)) in enumerate(models.items())}
        original_logits, labels, hidden = outputs["original (do nothing)"]
        forget_hidden = model_outputs(models["original (do nothing)"][0], forget, data_collator=collator,
                                      batch_size=128, pooled=True)[2]
        fit = original_logits.argmax(-1) == labels
        for group, rows in groups(original_logits, labels, hidden, forget_hidden).items():
            rows = rows & fit
            lost = {label: float((logits[rows].argmax(-1) != labels[rows]).mean()) if rows.any() else None
                    for label, (logits, _, _) in outputs.items() if label != "original (do nothing)"}
            records.append({"group": group, "seed": seed, "rows": int(rows.sum()), **lost})
        overall = next(r for r in records if r["seed"] == seed and r["group"] == "all retain rows")
        print(f"[seed {seed}] lost of all retain rows: {overall}", flush=True)
    write(Path(own.out), records, meta(own, argv), own, args.dataset)


def write(out: Path, records: list[dict], meta: dict, own, dataset: str) -> None:
    models = ["retrained", *RUNS]
    out.mkdir(parents=True, exist_ok=True)
    (out / "retain_damage.json").write_text(json.dumps({"provenance": meta, "records": records}, indent=1))
    lines = header_lines(meta, "Which retain rows the push erases")
    lines += [f"Setting: {dataset}, {round(own.fraction * 100)}% forgotten; "
              f"mean ± 95 % CI over seeds {', '.join(map(str, own.seeds))}. Each cell: the share of the retain rows "
              "the original predicts correctly (in the group) that the model gets wrong; `rows`: how many such rows "
              "a seed's group holds. Groups are fixed by the original alone: quartiles of the highest cosine "
              "similarity to a forget row (1 = farthest) and of the original's logit confidence (1 = least sure); "
              "the rarest classes holding up to half the retain rows.", "",
              "| group | rows | " + " | ".join(f"lost: {m}" for m in models) + " |",
              "|---|---|" + "---|" * len(models)]
    for group in dict.fromkeys(r["group"] for r in records):
        lines.append(f"| {group} | " + " | ".join(ci_cells([r for r in records if r["group"] == group],
                                                            ["rows", *models])) + " |")
    (out / "retain_damage.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
