"""The NeurIPS 2023 unlearning competition's score for every method on one forget split (arXiv 2406.09073).

For one split (15 % by default) of the GoEmotions benchmark's setting (`goemotions.py`: the same data, recipe, cached
models and methods; ``--dataset banking77`` for the second dataset), N retrained models (training seeds
``seed + 1000 i``; the first two are `goemotions.py`'s retrained and null-reference models, from the cache), N more
retrained models (the ceiling), and N runs of every method from the one original (unlearning seeds
``seed + 1000 i``). Each model's logit-scaled confidence on every forget row and its retain / test accuracy go to
`hf_unlearn.audit.competition_score`: per-example ε, forgetting quality F, F × RA/RA_ret × TA/TA_ret. The retrained
models' own F against the other N retrained models is what a perfect unlearner scores with N models: the ceiling.

    python benchmarks/competition.py --n_models 8 --data_dir ../shared/data/goemotions --cache_dir benchmarks/cache
    python benchmarks/competition.py --n_models 8 --dataset banking77 --data_dir /work/data2/banking77 \\
        --train_rows 400 --val_rows 300 --test_rows 600 --forget_class '' --cache_dir benchmarks/cache

Every flag not listed below is `goemotions.py`'s. Writes ``<out>/competition_<dataset>.{json,md}``, rewritten as
each model finishes (the scores once every model of a group is in).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goemotions as g  # noqa: E402
from _workers import parallel  # noqa: E402
from summary import header_lines, mean_ci  # noqa: E402

from hf_unlearn.audit import competition_score, model_confidences, sample_stats  # noqa: E402
from hf_unlearn.data.selection import sample_rows  # noqa: E402
from hf_unlearn.io import write_text_atomic  # noqa: E402
from hf_unlearn.provenance import provenance  # noqa: E402


def parse(argv=None) -> tuple[argparse.Namespace, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n_models", type=int, default=8, help="Models per group (the competition used 512).")
    p.add_argument("--fraction", type=float, default=0.15, help="Forget fraction of the split.")
    p.add_argument("--split_seed", type=int, default=0, help="Seed of the forget selection.")
    own, rest = p.parse_known_args(argv)
    args = g.parse_args(rest + ["--fractions", str(own.fraction), "--seeds", str(own.split_seed)])
    return own, args


def split_name(own) -> str:
    return "15%" if own.fraction == 0.15 else f"{round(own.fraction * 100)}%"


def retrained_models(own, args) -> list[tuple[str, dict, int, int]]:
    """(name, selector, split seed, training seed) of the 2N retrained models, named as `goemotions.py` names the
    ones it trains too (its retrained model and null reference come from the cache)."""
    seed, name = own.split_seed, split_name(own)
    out = []
    for i in range(2 * own.n_models):
        suffix = "" if i == 0 else "-null" if i == 1 else f"-s{seed + 1000 * i}"
        out.append((f"retrain-{name}-{seed}{suffix}", {"forget_fraction": own.fraction}, seed, seed + 1000 * i))
    return out


def _outputs(args, model, forget, retain, seed) -> dict:
    """The model's logit-scaled confidence on every forget row, and its forget, retain and test accuracy."""
    s = g._setup(g._key(args))
    out = {"confidence": model_confidences(model, forget, data_collator=s["collator"]).tolist()}
    for part, rows in (("forget", forget), ("retain", sample_rows(retain, args.audit_retain_rows, seed)),
                       ("test", s["test"])):
        out[f"{part}_acc"] = float(sample_stats(model, rows, data_collator=s["collator"])["correct"].mean())
    return out


def model_task(args, own_json: str, kind: str, label: str, overrides: dict | None, index: int) -> dict:
    """One model's outputs: a retrained one (from the cache, trained if missing) or one unlearning run."""
    own = argparse.Namespace(**json.loads(own_json))
    seed = own.split_seed
    selector = {"forget_fraction": own.fraction}
    forget, retain = g.split_rows(args, selector, seed)
    if kind == "retrain":
        name, _, _, train_seed = retrained_models(own, args)[index]
        model, (wall, cpu) = g.trained(args, name, selector, seed, train_seed=train_seed)
    elif kind == "original":
        model, (wall, cpu) = g.trained(args, "original", None, args.original_seed)
    else:
        original, _ = g.trained(args, "original", None, args.original_seed)
        state = copy.deepcopy(original.state_dict())
        run_seed = seed + 1000 * index
        folder = (Path(args.out) / "work" / f"competition-{args.dataset}-{split_name(own)}-{seed}"
                  / f"{label}-{run_seed}")
        model, _, wall, cpu = g.unlearn_run(args, overrides, forget, retain, run_seed, state, folder)
    return {"kind": kind, "label": label, "index": index, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            **_outputs(args, model, forget, retain, seed)}


def summarise(outputs: list[dict], n: int) -> list[dict]:
    """One record per method (and for the original and the retrained models): F, the competition score and the
    utility ratios against the first N retrained models; the retrained record is the other N scored against them."""
    groups: dict[str, list[dict]] = {}
    for o in outputs:
        groups.setdefault(o["label"], []).append(o)
    ref = sorted(groups.get("retrain", []), key=lambda o: o["index"])
    reference, ceiling = ref[:n], ref[n:]
    if len(reference) < n:
        return []
    ra_ret = [o["retain_acc"] for o in reference]
    ta_ret = [o["test_acc"] for o in reference]
    cpu_ret = float(np.mean([o["cpu_s"] for o in reference]))
    records = []
    for label, runs in [("retrain", ceiling)] + [(k, v) for k, v in groups.items() if k != "retrain"]:
        if len(runs) < (1 if label == "original" else n):
            continue
        if label == "original":  # deterministic: N "do nothing" runs are N copies of the original
            runs = runs[:1] * n
        conf = np.array([o["confidence"] for o in runs])
        score = competition_score(conf, np.array([o["confidence"] for o in reference]),
                                  retain_acc=[o["retain_acc"] for o in runs], test_acc=[o["test_acc"] for o in runs],
                                  retrained_retain_acc=ra_ret, retrained_test_acc=ta_ret)
        points = np.array(score.example_scores)
        buckets = np.bincount(np.minimum(np.floor(np.array(score.epsilons) / 0.5), 5).astype(int), minlength=6)
        records.append({
            "method": label, "n_models": n, "n_forget": conf.shape[1],
            "forgetting_quality_F": score.forgetting_quality,
            "forgetting_quality_F_ci": float(1.96 * points.std(ddof=1) / np.sqrt(len(points))),
            "competition_score": score.score, "retain_ratio": score.retain_ratio, "test_ratio": score.test_ratio,
            **{f"{k}_acc": mean_ci([o[f"{k}_acc"] for o in runs])[0] for k in ("forget", "retain", "test")},
            **{f"{k}_acc_ci": mean_ci([o[f"{k}_acc"] for o in runs])[1] for k in ("forget", "retain", "test")},
            "epsilon_median": float(np.median(score.epsilons)),
            "epsilon_buckets_0_to_2_5_plus": buckets.tolist(),
            "cpu_time_s": float(np.mean([o["cpu_s"] for o in runs])),
            "retrain_ratio": None if label == "original" else float(np.mean([o["cpu_s"] for o in runs])) / cpu_ret,
        })
    return records


def _pm(record: dict, key: str) -> str:
    half = record[f"{key}_ci"]
    return f"{record[key]:.3f}" + ("" if np.isnan(half) or half == 0 else f" ± {half:.3f}")


def markdown(records: list[dict], meta: dict, own) -> str:
    n = own.n_models
    lines = header_lines(meta, f"Competition score ({meta['settings']['dataset']}, one {split_name(own)} split, "
                               f"N = {n})") + [
        "", f"Models scored: {meta['models_done']} of {meta['models_total']}; wall {meta['wall_seconds'] / 60:.1f} "
            f"min (training phase {meta.get('training_wall_s', 0) / 60:.1f} min).", "",
        f"Per forget example, ε of the best threshold or interval telling N = {n} models of a method from N "
        f"retrained ones (their logit-scaled confidence), scored 2^−k in ε buckets of 0.5 below ⌈log(N − 1)⌉ = "
        f"{int(np.ceil(np.log(n - 1)))}; F = the mean over the forget set (± 1.96 standard errors over its "
        "examples); score = F × RA/RA_ret × TA/TA_ret. `retrain` is N other retrained models scored against the "
        "first N: the ceiling at this N. `original` is doing nothing (N copies of the original). Accuracies: mean "
        "± 95 % CI over the N models.", "",
        "| method | F | competition score | RA / RA_ret | TA / TA_ret | median ε | forget acc | "
        "test acc | CPU time / retrain |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ratio = "" if r["retrain_ratio"] is None else f"{r['retrain_ratio']:.3f}"
        lines.append(f"| {r['method']} | {r['forgetting_quality_F']:.3f} ± {r['forgetting_quality_F_ci']:.3f} | "
                     f"{r['competition_score']:.3f} | {r['retain_ratio']:.3f} | {r['test_ratio']:.3f} | "
                     f"{r['epsilon_median']:.2f} | {_pm(r, 'forget_acc')} | {_pm(r, 'test_acc')} | {ratio} |")
    return "\n".join(lines) + "\n"


def report_only(args) -> None:
    """``--report_only`` (goemotions.py's flag): rewrite the Markdown from the results JSON; trains nothing."""
    path = Path(args.out) / f"competition_{args.dataset}.json"
    if not path.is_file():
        raise SystemExit(f"--report_only: no {path}; run competition.py without it first.")
    saved = json.loads(path.read_text())
    own = argparse.Namespace(**{k: saved["provenance"]["settings"][k] for k in ("n_models", "fraction", "split_seed")})
    write_text_atomic(path.with_suffix(".md"), markdown(saved["records"], saved["provenance"], own))


def main(argv=None) -> None:
    own, args = parse(argv)
    if args.report_only:
        return report_only(args)
    if own.n_models < 3:
        raise SystemExit("--n_models must be at least 3 (the score's buckets stop at log(N − 1)).")
    meta = provenance([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], seeds=[own.split_seed],
                      code=Path(__file__), settings={**vars(own), **{k: v for k, v in vars(args).items()}})
    stem = f"competition_{args.dataset}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    retrained = retrained_models(own, args)
    # the two models goemotions.py trains too come last: a run of it started before this one may be training them
    models = retrained[2:] + [("original", None, args.original_seed, args.original_seed)] + retrained[:2]
    print(f"==> Training (or finding in the cache) {len(models)} models", flush=True)
    parallel(args, g._train_task, models)
    meta["training_wall_s"] = round(time.perf_counter() - started, 1)
    own_json = json.dumps(vars(own))
    tasks = [("original", "original", None, 0)] + [("retrain", "retrain", None, i) for i in range(2 * own.n_models)]
    tasks += [("unlearn", label, overrides, i) for label, overrides in g.runs_of(args) for i in range(own.n_models)]
    outputs: list[dict] = []

    def done(_i: int, result: dict) -> None:
        outputs.append(result)
        print(f"  {result['label']} #{result['index']}: test acc {result['test_acc']:.3f} "
              f"({result['cpu_s']:.0f} CPU s)", flush=True)
        records = summarise(outputs, own.n_models)
        meta.update(models_done=len(outputs), models_total=len(tasks),
                    wall_seconds=round(time.perf_counter() - started, 1), cpu_seconds=round(time.process_time(), 1))
        write_text_atomic(out / f"{stem}.json", json.dumps({"provenance": meta, "records": records}, indent=1))
        write_text_atomic(out / f"{stem}.md", markdown(records, meta, own))

    parallel(args, model_task, [(own_json, *t) for t in tasks], on_done=done)
    print((out / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
