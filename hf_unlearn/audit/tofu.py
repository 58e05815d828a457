"""TOFU's metrics (Maini et al. 2024, arXiv 2401.06121) for causal LMs, defined as open-unlearning computes them:
truth ratio, forget quality, answer probability, ROUGE-L and model utility, on question/answer rows.

- **Answer probability**: P(a|q)^(1/|a|) = exp(−token-mean NLL of the answer given the question), mean over rows.
- **Truth ratio** of a row: R = P̄(perturbed) / (P(paraphrased) + 1e-10), each probability length-normalised
  (exp of minus the token-mean NLL), P̄(perturbed) = exp(−mean_k L_pert,k) (the mean over the perturbed answers
  taken in log space). R ≪ 1: the model prefers the correct (paraphrased) answer to wrong ones, i.e. knows it;
  R ≈ 1: it cannot tell. Aggregates: forget rows ``forget_truth_ratio`` = mean min(R, 1/(R + 1e-10)) (closer to 1
  is better, open-unlearning's ``closer_to_1_better``); retain rows ``retain_truth_ratio`` = mean max(0, 1 − R)
  (``true_better``, the value TOFU puts into model utility); ``forget_truth_ratio_mean`` = plain mean of R.
- **Forget quality**: the p-value of a two-sample Kolmogorov–Smirnov test (``scipy.stats.ks_2samp``) between the
  unlearned model's truth ratios on the forget rows and those of a model trained without them (the retrained
  model, the gold standard). High (TOFU reads > 0.05) = indistinguishable from retraining.
- **ROUGE-L**: ``rouge_score``'s ``rougeL`` recall (with stemming) of the greedy answer generated from the question
  against the gold answer.
- **Model utility** (here): the harmonic mean of the retain rows' answer probability, ROUGE-L and, when the retain
  rows carry paraphrased/perturbed answers, truth-ratio score. TOFU also averages real-author and world-fact sets
  (9 values), which this data does not hold, so the numbers are comparable across models of one run only.

Privacy: generated text and per-row values stay in memory; only aggregates are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from accelerate.utils import send_to_device
from datasets import Dataset
from rouge_score import rouge_scorer
from scipy.stats import ks_2samp

from ..data.collators import CausalLMCollator
from ..data.preprocessing import QA_TEMPLATE, tokenize_qa
from ..losses import causal_lm_loss
from ._batching import subsample_indices

__all__ = ["TofuData", "answer_nll", "forget_quality", "forget_truth_ratio_score", "model_utility",
           "retain_truth_ratio_score", "rouge_l_recall", "tofu_markdown", "tofu_metrics", "truth_ratio_from_nll",
           "truth_ratios"]

PARAPHRASED, PERTURBED = "paraphrased_answer", "perturbed_answer"


@dataclass
class TofuData:
    """What :func:`~hf_unlearn.audit.audit_model` needs for TOFU's metrics (``audit_model(..., tofu=TofuData(...))``).

    ``forget`` / ``retain``: raw TOFU rows (``question``, ``answer``; forget rows also ``paraphrased_answer`` and
    ``perturbed_answer``, a list). ``retrained``: a model trained without the forget rows, or its truth ratios on
    the same forget rows (:func:`truth_ratios`), for the forget quality.
    """

    forget: Any
    retain: Any | None = None
    retrained: Any | None = None
    max_samples: int | None = None
    max_new_tokens: int = 48
    max_length: int = 256
    batch_size: int = 16
    seed: int = 0


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def answer_nll(model: torch.nn.Module, tokenizer: Any, questions: Sequence[str], answers: Sequence[str], *,
               max_length: int = 256, batch_size: int = 16) -> np.ndarray:
    """Token-mean negative log-likelihood of each answer given its question (the QA template of ``tokenize_qa``)."""
    data = tokenize_qa(Dataset.from_dict({"question": list(questions), "answer": list(answers)}), tokenizer,
                       max_length=max_length)
    collate, device, out = CausalLMCollator(tokenizer), _device(model), []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(data), batch_size):
            rows = data.select(range(start, min(start + batch_size, len(data))))
            batch = collate([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows])
            batch = send_to_device(batch, device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            out.append(causal_lm_loss(logits, batch["labels"]).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


def truth_ratios(model: torch.nn.Module, tokenizer: Any, rows: Any, *, max_length: int = 256,
                 batch_size: int = 16) -> np.ndarray:
    """R = exp(L_paraphrased − mean_k L_perturbed,k) per row (see the module docstring); rows need the
    ``paraphrased_answer`` and ``perturbed_answer`` (a list, or one string) columns."""
    missing = [c for c in ("question", PARAPHRASED, PERTURBED) if c not in rows.column_names]
    if missing:
        raise ValueError(f"Truth ratios need the columns {missing} (TOFU's forget files carry them; retain90 does "
                         f"not). Got {rows.column_names}.")
    questions, para = rows["question"], rows[PARAPHRASED]
    perturbed = [p if isinstance(p, list) else [p] for p in rows[PERTURBED]]
    owner = [i for i, answers in enumerate(perturbed) for _ in answers]
    flat = [a for answers in perturbed for a in answers]
    kw = dict(max_length=max_length, batch_size=batch_size)
    l_para = answer_nll(model, tokenizer, questions, para, **kw)
    l_pert = answer_nll(model, tokenizer, [questions[i] for i in owner], flat, **kw)
    mean_pert = np.bincount(owner, weights=l_pert, minlength=len(questions)) / np.maximum(
        np.bincount(owner, minlength=len(questions)), 1)
    return truth_ratio_from_nll(l_para, mean_pert)


def truth_ratio_from_nll(paraphrased_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """R = exp(−L_pert) / (exp(−L_para) + 1e-10) per row from token-mean NLLs; ``perturbed_nll`` ``[rows]`` (already
    averaged over a row's perturbed answers) or ``[rows, k]`` (averaged here)."""
    perturbed = np.asarray(perturbed_nll, dtype=np.float64)
    if perturbed.ndim > 1:
        perturbed = perturbed.mean(axis=tuple(range(1, perturbed.ndim)))
    return np.exp(-perturbed) / (np.exp(-np.asarray(paraphrased_nll, dtype=np.float64)) + 1e-10)


def forget_truth_ratio_score(ratios: np.ndarray) -> float:
    """Forget rows: mean min(R, 1/(R + 1e-10)) (1 = cannot tell true from false answers)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.minimum(ratios, 1 / (ratios + 1e-10))))


def retain_truth_ratio_score(ratios: np.ndarray) -> float:
    """Retain rows: mean max(0, 1 − R) (1 = always prefers the true answer)."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(ratios, dtype=np.float64))))


def forget_quality(ratios: np.ndarray, retrained_ratios: np.ndarray) -> tuple[float, float]:
    """(p-value, statistic) of the two-sample KS test of the forget rows' truth ratios against the retrained
    model's."""
    test = ks_2samp(np.asarray(ratios, dtype=np.float64), np.asarray(retrained_ratios, dtype=np.float64))
    return float(test.pvalue), float(test.statistic)


def model_utility(values: Sequence[float | None]) -> float:
    """Harmonic mean of the utility values (``None`` / non-finite left out; 0 if any is ≤ 0, NaN if none)."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return float("nan")
    return 0.0 if min(values) <= 0 else len(values) / sum(1.0 / v for v in values)


_SCORER = None


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall of ``prediction`` against ``reference`` (``rouge_score``, ``rougeL`` with stemming)."""
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_SCORER.score(reference, prediction)["rougeL"].recall)


@torch.no_grad()
def generate_answers(model: torch.nn.Module, tokenizer: Any, questions: Sequence[str], *, max_new_tokens: int = 48,
                     batch_size: int = 16) -> list[str]:
    """Greedy answers to the questions (prompt = ``QA_TEMPLATE``, left-padded batches); text stays in memory."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device, answers = _device(model), []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(questions), batch_size):
            prompts = [QA_TEMPLATE.format(question=q) for q in questions[start:start + batch_size]]
            ids = tokenizer(prompts, add_special_tokens=True)["input_ids"]
            length = max(len(x) for x in ids)
            input_ids = torch.tensor([[pad] * (length - len(x)) + list(x) for x in ids], device=device)
            mask = torch.tensor([[0] * (length - len(x)) + [1] * len(x) for x in ids], device=device)
            out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
            answers += tokenizer.batch_decode(out[:, length:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return answers


def _as_dataset(rows: Any, name: str) -> Dataset:
    if isinstance(rows, Dataset):
        return rows
    if isinstance(rows, (list, tuple)):
        return Dataset.from_list(list(rows))
    raise ValueError(f"TOFU {name} rows must be a datasets.Dataset or a list of dicts, got {type(rows).__name__}.")


def tofu_metrics(model: torch.nn.Module, tokenizer: Any, data: TofuData) -> dict[str, float]:
    """TOFU's metrics of ``model`` on ``data`` (module docstring): aggregates only, JSON-ready."""
    if tokenizer is None:
        raise ValueError("TOFU metrics need the model's tokenizer: pass tokenizer=... to audit_model.")
    kw = dict(max_length=data.max_length, batch_size=data.batch_size)
    out: dict[str, float] = {}
    splits = {"forget": data.forget, "retain": data.retain}
    for offset, (name, rows) in enumerate(splits.items()):
        if rows is None:
            continue
        rows = _as_dataset(rows, name)
        rows = rows.select(subsample_indices(len(rows), data.max_samples, data.seed + offset).tolist())
        nll = answer_nll(model, tokenizer, rows["question"], rows["answer"], **kw)
        generated = generate_answers(model, tokenizer, rows["question"], max_new_tokens=data.max_new_tokens,
                                     batch_size=data.batch_size)
        out[f"n_{name}"] = len(rows)
        out[f"{name}_answer_prob"] = float(np.mean(np.exp(-nll)))
        out[f"{name}_rouge_l"] = float(np.mean([rouge_l_recall(g, a) for g, a in zip(generated, rows["answer"])]))
        if PARAPHRASED in rows.column_names and PERTURBED in rows.column_names:
            ratios = truth_ratios(model, tokenizer, rows, **kw)
            score = forget_truth_ratio_score if name == "forget" else retain_truth_ratio_score
            out[f"{name}_truth_ratio"] = score(ratios)
            out[f"{name}_truth_ratio_mean"] = float(np.mean(ratios))
            if name == "forget":
                forget_ratios = ratios
    if data.retain is not None:
        out["model_utility"] = model_utility([out["retain_answer_prob"], out["retain_rouge_l"],
                                              out.get("retain_truth_ratio")])
    if data.retrained is not None and "forget_truth_ratio" in out:
        reference = data.retrained
        if isinstance(reference, torch.nn.Module):
            forget = _as_dataset(data.forget, "forget")
            forget = forget.select(subsample_indices(len(forget), data.max_samples, data.seed).tolist())
            reference = truth_ratios(reference, tokenizer, forget, **kw)
        out["forget_quality"], out["forget_quality_ks_statistic"] = forget_quality(forget_ratios, reference)
    return out


ROWS = (("forget_quality", "forget quality (KS p-value vs retrained; high = like retraining)"),
        ("forget_truth_ratio", "forget truth ratio (mean min(R, 1/R); 1 = cannot tell)"),
        ("forget_truth_ratio_mean", "forget truth ratio, plain mean of R"),
        ("forget_answer_prob", "forget answer probability"), ("forget_rouge_l", "forget ROUGE-L recall"),
        ("retain_answer_prob", "retain answer probability"), ("retain_rouge_l", "retain ROUGE-L recall"),
        ("retain_truth_ratio", "retain truth ratio (mean max(0, 1 − R))"),
        ("model_utility", "model utility (harmonic mean, retain)"))


def tofu_markdown(results: dict[str, dict[str, float] | None]) -> str:
    """A Markdown table of TOFU metrics, one column per model (e.g. original / retrained / unlearned)."""
    names = [n for n, r in results.items() if r]
    if not names:
        return ""
    lines = ["| TOFU metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label in ROWS:
        if any(key in results[n] for n in names):
            cells = [f"{results[n][key]:.4g}" if key in results[n] else "–" for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
