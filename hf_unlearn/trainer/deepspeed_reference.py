"""The DeepSpeed engine for the frozen reference model (NPO, the KL retain term) next to the trained one.

Under ZeRO-3 the reference model is sharded like the trained model (each rank holds 1/N of it); under ZeRO-1/2
(which shard optimizer state and gradients only, and a frozen model has neither) it is replicated with ZeRO
disabled (stage 0). This mirrors trl's ``prepare_deepspeed``. ``deepspeed`` is imported only when called.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

# ZeRO-3 bucket sizes that DeepSpeed derives from the hidden size (transformers fills them the same way at train
# time, after the reference model has been built, so they may still read "auto" here)
_HIDDEN_SIZE_KEYS = {
    "reduce_bucket_size": lambda h: h * h,
    "stage3_prefetch_bucket_size": lambda h: int(0.9 * h * h),
    "stage3_param_persistence_threshold": lambda h: 10 * h,
}
# sections that only matter for a model that is trained
_TRAINING_ONLY = ("optimizer", "scheduler", "gradient_clipping", "gradient_accumulation_steps", "train_batch_size")


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == "auto"


def _drop_auto(config: dict[str, Any]) -> dict[str, Any]:
    """Remove every key still set to ``"auto"`` (DeepSpeed's own defaults then apply), recursively."""
    return {k: _drop_auto(v) if isinstance(v, dict) else v for k, v in config.items() if not _is_auto(v)}


def hidden_size_of(model: torch.nn.Module | None) -> int | None:
    """The model's hidden size (largest of ``hidden_sizes``, or ``hidden_size`` / ``d_model``), if it has one."""
    config = getattr(model, "config", None)
    if getattr(config, "hidden_sizes", None):
        return int(max(config.hidden_sizes))
    for name in ("hidden_size", "d_model"):
        if isinstance(getattr(config, name, None), int):
            return int(getattr(config, name))
    return None


def reference_deepspeed_config(
    train_config: dict[str, Any],
    hidden_size: int | None = None,
    mixed_precision: str | None = None,
) -> dict[str, Any]:
    """The DeepSpeed config for an inference-only reference model, derived from the training config.

    * ZeRO stage 3 stays stage 3 (the reference is sharded); stages 0–2 become stage 0 (replicated).
    * ZeRO-3 bucket sizes set to ``"auto"`` are filled from ``hidden_size`` (dropped when it is unknown).
    * Optimizer, scheduler, gradient clipping / accumulation and offloaded optimizer state are removed.
    * ``fp16``/``bf16`` ``enabled: "auto"`` follows ``mixed_precision`` (``"fp16"``, ``"bf16"`` or ``"no"``).
    * ``train_micro_batch_size_per_gpu`` is kept when numeric, else 1 (DeepSpeed requires one; unused in eval).
    * Any other ``"auto"`` value is dropped so DeepSpeed's defaults apply.

    The input is not modified.
    """
    config = copy.deepcopy(train_config)
    zero = dict(config.get("zero_optimization") or {})
    stage = int(zero.get("stage", 0))
    if stage == 3:
        zero.pop("offload_optimizer", None)
        for key, rule in _HIDDEN_SIZE_KEYS.items():
            if _is_auto(zero.get(key)) and hidden_size is not None:
                zero[key] = rule(hidden_size)
        config["zero_optimization"] = zero
    else:
        config["zero_optimization"] = {"stage": 0}
    for key in _TRAINING_ONLY:
        config.pop(key, None)
    for precision in ("fp16", "bf16"):
        section = config.get(precision)
        if isinstance(section, dict) and _is_auto(section.get("enabled")):
            config[precision] = {**section, "enabled": mixed_precision == precision}
    micro = config.get("train_micro_batch_size_per_gpu")
    config["train_micro_batch_size_per_gpu"] = micro if isinstance(micro, int) and micro > 0 else 1
    return _drop_auto(config)


def prepare_deepspeed_reference(model: torch.nn.Module, accelerator) -> torch.nn.Module:
    """Wrap a frozen reference model in a DeepSpeed inference engine matching ``accelerator``'s ZeRO stage.

    ``model`` should already be in eval mode with ``requires_grad`` off. Under ZeRO-3, build it with the
    DeepSpeed config active (e.g. ``from_pretrained`` after the ``TrainingArguments``), or pass it as
    ``ref_model``, so its weights are partitioned from the start rather than copied whole onto every rank.
    """
    try:
        import deepspeed
    except ImportError as err:
        raise ImportError(
            "DeepSpeed is enabled in the Accelerate config but the `deepspeed` package is not installed: "
            "`pip install deepspeed`, or launch with a config without DeepSpeed."
        ) from err
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        raise ValueError("prepare_deepspeed_reference needs an Accelerator with a DeepSpeed plugin.")
    config = reference_deepspeed_config(plugin.deepspeed_config, hidden_size_of(model),
                                        getattr(accelerator, "mixed_precision", None))
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine
