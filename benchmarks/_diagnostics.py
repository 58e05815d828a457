"""The scaffolding of the benchmark's diagnostics (`class_balance.py`, `retain_damage.py`): one benchmark setting,
per seed the original, the retrained model and ∇τ runs started from the original, and a table of means ± 95 % CI.

Every flag the diagnostic does not define itself goes to `goemotions.py`'s parser, so ``--dataset banking77
--train_rows 300 ...`` selects the second dataset's setting as it does there.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goemotions as bench  # noqa: E402
from summary import mean_ci  # noqa: E402

from hf_unlearn.provenance import provenance  # noqa: E402


def parser(doc: str, out: str, seeds: list[int], fraction: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--fraction", type=float, default=fraction)
    p.add_argument("--seeds", type=int, nargs="+", default=seeds)
    p.add_argument("--eval_split", default="validation", choices=["validation", "test"])
    p.add_argument("--cache_dir", default="benchmarks/cache")
    p.add_argument("--out", default=out)
    p.add_argument("--quick", action="store_true", help="A smoke test: goemotions.py's --quick setting (tiny model).")
    return p


def setting(own, extra: list[str]):
    """goemotions.py's arguments for the diagnostic's setting (its split, seeds and cache; ``extra`` passed on)."""
    return bench.parse_args(["--data_dir", own.data_dir, "--fractions", str(own.fraction), "--seeded_fractions",
                             str(own.fraction), "--seeds", *map(str, own.seeds), "--forget_class", "",
                             "--eval_split", own.eval_split, "--cache_dir", own.cache_dir, "--out", own.out,
                             *(["--quick"] if own.quick else []), *extra])


def seed_models(args, own, runs: dict[str, dict]):
    """Per seed: (seed, forget rows, retain rows, {label: (model, trainer or None)}), the original and the retrained
    model first, then each of ``runs`` (UnlearningArguments overrides) started from the original (cached models)."""
    name = f"{round(own.fraction * 100)}%"
    original, _ = bench.trained(args, "original", None, args.original_seed)
    state = copy.deepcopy(original.state_dict())
    for seed in own.seeds:
        selector = {"forget_fraction": own.fraction}
        forget, retain = bench.split_rows(args, selector, seed)
        retrained, _ = bench.trained(args, f"retrain-{name}-{seed}", selector, seed)
        models = {"original (do nothing)": (original, None), "retrained": (retrained, None)}
        for label, overrides in runs.items():
            folder = Path(own.out) / "work" / f"{args.dataset}-{name}-{seed}" / str(len(models))
            model, trainer, _, _ = bench.unlearn_run(args, overrides, forget, retain, seed, state, folder)
            models[label] = (model, trainer)
        yield seed, forget, retain, models


def meta(own, argv) -> dict:
    return provenance([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], seeds=own.seeds,
                      code=Path(__file__).resolve().parent, settings=vars(own))


def ci_cells(records: list[dict], keys: list[str]) -> list[str]:
    """Mean ± 95 % CI over ``records`` of each key (blank where none measured it)."""
    cells = []
    for key in keys:
        values = [r[key] for r in records if r.get(key) is not None]
        m, h, n = mean_ci(values) if values else (None, None, 0)
        cells.append("" if m is None else f"{m:.3f}" if n == 1 else f"{m:.3f} ± {h:.3f}")
    return cells
