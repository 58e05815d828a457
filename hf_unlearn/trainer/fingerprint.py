"""The fingerprint of an unlearning job, stored in its checkpoints so a checkpoint resumes only its own job.

A job is its data (digests of the forget, retain and validation rows: inputs and labels, any order), its method and
seed, and the arguments that change the run (learning rate, schedule, α, τ, length, batch...). Digests only: no
row content, ids or labels.
"""

from __future__ import annotations

from typing import Any

from ..data.identity import dataset_digest

#: `UnlearningArguments` fields that change what a run computes (besides the method's own hyperparameters).
RUN_ARGUMENTS = (
    "seed", "data_seed", "alpha", "alpha_schedule", "alpha_max", "tau", "tau_refresh_epochs", "tau_max_samples",
    "forget_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "lr_min_ratio", "warmup_steps",
    "warmup_ratio", "weight_decay", "max_grad_norm", "optim", "adam_beta1", "adam_beta2", "adam_epsilon",
    "gradient_accumulation_steps", "stop_at_tau", "task", "modality", "retain_replay", "prior_repair",
    "prior_target", "head_refit",
)
DATA = (("forget_rows", "forget rows"), ("retain_rows", "retain rows"), ("validation_rows", "validation rows"))


def _plain(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)


def job_fingerprint(args, method_hparams: dict[str, Any], samples_per_step: int, forget, retain,
                    validation) -> dict[str, Any]:
    """What identifies a job: data digests, method, the run's arguments and the method's hyperparameters
    (a JSON-able dict)."""
    arguments = {name: _plain(getattr(args, name, None)) for name in RUN_ARGUMENTS}
    arguments.update({name: _plain(value) for name, value in method_hparams.items()})
    arguments["samples_per_step"] = samples_per_step
    return {"forget_rows": dataset_digest(forget), "retain_rows": dataset_digest(retain),
            "validation_rows": dataset_digest(validation), "method": args.method, "arguments": arguments}


def job_differences(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's job and this one, in words (``[]``: the same job, or no record)."""
    if not saved:
        return []
    found = []
    for key, words in DATA:
        a, b = saved.get(key), current.get(key)
        if a is not None and b is not None and a != b:
            found.append(f"{words} (digest {a[:12]} in the checkpoint, {b[:12]} now)")
    if saved.get("method") != current.get("method"):
        found.append(f"method ({saved.get('method')!r} in the checkpoint, {current.get('method')!r} now)")
    old, new = saved.get("arguments") or {}, current.get("arguments") or {}
    for name in sorted(set(old) & set(new)):
        if old[name] != new[name]:
            found.append(f"{name} ({old[name]!r} in the checkpoint, {new[name]!r} now)")
    return found
