"""Model card content for unlearned models (written once, after the audit).

A card reports sizes, arguments and aggregate audit numbers only: never forget-set content, ids or labels.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..audit.registry import ATTACKS
from ..audit.tofu import tofu_markdown
from ..audit.verdict import bottom_line
from ..io import write_text_atomic

__all__ = ["CITATION", "build_model_card", "write_model_card"]

CITATION = r"""@article{trippa2024nablatau,
  title   = {$\nabla \tau$: Gradient-based and Task-Agnostic machine Unlearning},
  author  = {Trippa, Daniel and Campagnano, Cesare and Bucarelli, Maria Sofia and Tolomei, Gabriele and
             Silvestri, Fabrizio},
  journal = {arXiv preprint arXiv:2403.14339},
  year    = {2024},
  url     = {https://arxiv.org/abs/2403.14339}
}"""

BASE_TAGS = ("hf-unlearn", "machine-unlearning")
PIPELINE_TAGS = {
    "single_label": "text-classification",
    "multi_label": "text-classification",
    "causal_lm": "text-generation",
    "image_classification": "image-classification",
}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _hub_id(name: str | None) -> str | None:
    """``name`` if it looks like a Hub repo id (``owner/name``) and is not a local path, else None."""
    if not name or os.path.exists(name) or not _HUB_ID.match(name):
        return None
    return name


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _eval_results(report: Any, pipeline_tag: str, dataset: str | None) -> list[EvalResult]:
    """model-index entries from an ``UnlearningReport``: accuracies per split and attack scores (aggregates)."""
    dataset = _hub_id(dataset)  # a local path is neither useful nor private enough for the metadata
    common = {"task_type": pipeline_tag, "task_name": "Machine unlearning audit",
              "dataset_type": dataset or "custom", "dataset_name": dataset or "forget / retain / test splits"}
    rows: list[tuple[str, str, str, Any]] = [
        ("forget", "accuracy", "Forget accuracy", report.forget_accuracy),
        ("retain", "accuracy", "Retain accuracy", report.retain_accuracy),
        ("test", "accuracy", "Test accuracy", report.test_accuracy),
        ("forget", "loss", "Forget loss", report.forget_loss),
        ("test", "loss", "Test loss", report.test_loss),
    ]
    for attack in ATTACKS.values():  # every registered attack and metric (forget vs test unless it names a split)
        result = report.attack_result(attack.name)
        if result is not None:
            rows += [row if len(row) == 4 else ("forget-vs-test", *row) for row in attack.card(result)]
    return [EvalResult(**common, dataset_split=split, metric_type=kind, metric_name=name,
                       metric_value=round(float(value), 4))
            for split, kind, name, value in rows if _finite(value)]


def _arguments_table(trainer: Any) -> list[str]:
    args, method = trainer.args, trainer.method
    rows = [("method", f"`{args.method}`")]
    if method.needs_alpha:
        source = "given" if args.alpha is not None else "automatic"
        rows += [("α₀ (forget-term weight)", f"{trainer.alpha0:.4g} ({source})"),
                 ("α schedule", args.alpha_schedule)]
    if method.needs_tau:
        values = ", ".join(f"step {h['step']}: {h['tau']:.4f}" for h in trainer.tau_history) or "–"
        rows += [("τ refresh", f"every {args.tau_refresh_epochs} forget-epoch(s)"), ("τ values", values)]
    if args.max_steps > 0:
        rows.append(("max steps", str(args.max_steps)))
    else:
        rows.append(("forget-epochs", str(args.forget_epochs)))
    rows += [
        ("optimizer steps", str(trainer.state.global_step)),
        ("learning rate", f"{args.learning_rate:g} ({getattr(args.lr_scheduler_type, 'value', args.lr_scheduler_type)}"
                          f" schedule, min ratio {args.lr_min_ratio:g})"),
        ("batch size", f"{args.per_device_train_batch_size} forget + {args.per_device_train_batch_size} retain "
                       f"per device × {args.world_size} device(s) × {args.gradient_accumulation_steps} accumulation"),
        ("seed", str(args.seed)),
    ]
    logged = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    for name, value in args.method_hparams().items():
        if value is None and isinstance(logged.get(name), (int, float)):  # automatic: the value the run used
            value = f"{logged[name]:.4g} (automatic)"
        rows.append((name, f"{value:g}" if isinstance(value, (int, float)) else str(value)))
    return ["| argument | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def _body(trainer: Any, model_name: str, base_model: str | None, dataset: str | None, bottom: Any = None,
          data_source: str | None = None) -> str:
    n_forget, n_retain = len(trainer.forget_dataset), len(trainer.retain_dataset)
    n_val = len(trainer.validation_dataset) if trainer.validation_dataset is not None else None
    origin = f"[`{base_model}`](https://huggingface.co/{base_model})" if base_model else "a trained model"
    data = f" fine-tuned on [`{dataset}`](https://huggingface.co/datasets/{dataset})" if _hub_id(dataset) else ""
    lines = [
        f"# {model_name}",
        "",
        f"This model is {origin}{data}, then made to forget part of its training data by **machine unlearning** "
        f"with hf-unlearn (method `{trainer.args.method}`; ∇τ: [arXiv:2403.14339](https://arxiv.org/abs/2403.14339))"
        ", keeping the rest.",
        "",
        *(["## Bottom line", "", bottom.markdown(), ""] if bottom is not None else []),
        "## What was unlearned",
        "",
        *([f"- Data: {data_source}."] if data_source else []),
        f"- Forget set: {n_forget} training samples ({trainer.forget_fraction:.2%} of the {n_forget + n_retain} "
        "samples of forget + retain).",
        f"- Retain set: {n_retain} samples.",
    ]
    if n_val is not None and trainer.method.needs_tau:
        lines.append(f"- τ (mean held-out loss) estimated on {n_val} validation samples the model never trained on.")
    lines += [
        "- Only sizes are reported: the forget set's content, ids and labels are not in this card or repository.",
        "",
        "## Unlearning arguments",
        "",
        *_arguments_table(trainer),
        "",
        "## Audit",
        "",
    ]
    if trainer.last_comparison is not None:
        lines.append(trainer.last_comparison.to_markdown())
        if getattr(trainer.last_audit, "tofu", None):
            lines.append(tofu_markdown({"unlearned": trainer.last_audit.tofu}))
    elif trainer.last_audit is not None:
        lines.append(trainer.last_audit.to_markdown())
    else:
        lines.append("No audit was recorded for this run (`trainer.audit(...)` writes one).")
    lines += [
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def build_model_card(
    trainer: Any,
    *,
    model_name: str | None = None,
    base_model: str | None = None,
    finetuned_from: str | None = None,
    dataset: str | list[str] | None = None,
    license: str | None = None,
    language: str | list[str] | None = None,
    tags: str | list[str] | None = None,
    data_source: str | None = None,
) -> ModelCard:
    """A model card (README.md with YAML metadata) for an ``UnlearningTrainer`` after ``train()``.

    Metadata: tags (``hf-unlearn``, ``machine-unlearning``, the method, then ``tags``), ``base_model`` (given, or
    ``finetuned_from``, or the model's ``_name_or_path`` when it is a Hub id), ``library_name: transformers``,
    ``license``/``language``/``datasets`` when given, and ``model-index`` results from ``trainer.last_audit``.
    Body: the bottom line (`hf_unlearn.audit.verdict`: forgetting shown / not shown / not measurable against the
    retrained model or chance, over-unlearning flagged; also in the YAML header as ``unlearning:``, with the original's
    figures beside the unlearned model's), forget/retain sizes and fraction, the unlearning arguments, the audit
    table, the paper's citation. ``data_source`` says where the training data came from when it was not the Hub
    dataset (e.g. the bundled sample): ``datasets:`` then names no Hub dataset.
    """
    config = getattr(getattr(trainer, "model", None), "config", None)
    base = _hub_id(base_model or finetuned_from or getattr(config, "_name_or_path", None))
    name = model_name or (trainer.args.hub_model_id or "").split("/")[-1] or Path(trainer.args.output_dir).name
    user_tags = [tags] if isinstance(tags, str) else list(tags or [])
    all_tags = list(dict.fromkeys([*BASE_TAGS, trainer.args.method, *user_tags]))
    datasets = [dataset] if isinstance(dataset, str) else list(dataset or [])
    first_dataset = datasets[0] if datasets else None
    task = trainer.task or getattr(trainer.last_audit, "task", None)
    pipeline_tag = PIPELINE_TAGS.get(task or "")
    results = None if trainer.last_audit is None else _eval_results(trainer.last_audit, pipeline_tag or "other",
                                                                    first_dataset)
    bottom = None if trainer.last_comparison is None else bottom_line(trainer.last_comparison)
    extra = {"unlearning": bottom.metadata()} if bottom is not None else {}
    if data_source:
        extra["unlearning"] = {**extra.get("unlearning", {}), "data": data_source}
    data = ModelCardData(
        model_name=name, base_model=base, library_name="transformers", license=license, language=language,
        tags=all_tags, datasets=[d for d in datasets if _hub_id(d)] or None, pipeline_tag=pipeline_tag,
        eval_results=results or None, **extra,
    )
    body = _body(trainer, name, base, first_dataset, bottom, data_source)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def write_model_card(trainer: Any, output_dir: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Write :func:`build_model_card` to ``output_dir/README.md`` (default: ``trainer.args.output_dir``).

    Keyword arguments go to :func:`build_model_card`. Only the main process writes; the path is returned on all.
    """
    path = Path(output_dir if output_dir is not None else trainer.args.output_dir) / "README.md"
    if trainer.is_world_process_zero():
        card = build_model_card(trainer, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, str(card))
    return path
