"""The run plan of `UnlearningTrainer`: every automatic default of one run (learning rate, α₀ and its schedule, the
run length in forget-epochs, τ's validation budget) derived from the data sizes and the method (`plan_run`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..methods import get_method
from .arguments import UnlearningArguments


def automatic_alpha(modality: str, forget_fraction: float, alpha_max: float = 0.9) -> float:
    """The paper's α₀: 0.5 for text; 5/3 × forget fraction for images, capped at ``alpha_max``."""
    if modality == "image":
        return min(5.0 / 3.0 * forget_fraction, alpha_max)
    return 0.5


def automatic_forget_epochs(n_forget: int, n_retain: int, batch_size: int, multiplier: float = 1.0,
                            minimum: int = 1) -> int:
    """⌊retain batches / (2 × forget batches)⌋ (at least 1), times the method's length multiplier, at least
    ``minimum``."""
    forget_batches = math.ceil(n_forget / batch_size)
    retain_batches = math.ceil(n_retain / batch_size)
    return max(1, minimum, int(round(max(1, retain_batches // (2 * forget_batches)) * multiplier)))


def automatic_tau_samples(samples_per_step: int, total_steps: int, refreshes: int, budget: float = 0.05,
                          minimum: int = 128) -> int:
    """Validation rows per τ pass so that all passes cost ≤ ``budget`` of the run (training ≈ 3 forwards/sample)."""
    training = 3 * samples_per_step * total_steps
    return max(minimum, int(budget / (1 - budget) * training / max(1, refreshes)))


def automatic_learning_rate(modality: str) -> float:
    """The paper's AdamW learning rate: 1e-3 for images, 3e-4 for text."""
    return 1e-3 if modality == "image" else 3e-4


def alpha_at(step: int, total_steps: int, alpha0: float, schedule: str) -> float:
    """α after ``step`` optimizer steps of ``total_steps``: linear decay to 0, or constant."""
    if schedule == "constant" or total_steps <= 0:
        return alpha0
    return alpha0 * max(0.0, 1.0 - step / total_steps)


@dataclass
class RunPlan:
    """Every automatic default of one run, resolved from the data sizes (see `plan_run`); ``automatic`` says, in
    words, which values were chosen automatically (logged once, at warning level, by the trainer)."""

    modality: str
    forget_fraction: float
    alpha0: float
    samples_per_step: int
    steps_per_forget_epoch: int
    fixed_tau: float | None
    tau_samples: int | None
    automatic: list[str] = field(default_factory=list)


def plan_run(args: UnlearningArguments, *, task: str | None, needs_tau: bool,
             length_multiplier: float | Mapping[str, float], n_forget: int, n_retain: int,
             num_labels: int | None = None, class_removal: bool = False, needs_alpha: bool = True,
             one_shot: bool = False) -> RunPlan:
    """Resolve the automatic rules; fills ``args.learning_rate``, ``args.forget_epochs``, ``num_train_epochs``,
    ``args.alpha_schedule`` (linear unless the method chose) and what the method's own ``automatic`` hook fills
    (∇τ: its push).
    ``length_multiplier`` is the method's (one number, or one per modality); ``args.length_multiplier`` overrides it.
    A ``one_shot`` method takes no training steps: its plan states no learning rate or run length."""
    automatic: list[str] = []
    modality = args.modality if args.modality != "auto" else ("image" if task == "image_classification" else "text")
    method = get_method(args.method)
    if method.automatic is not None:
        method.automatic(args, task, modality, class_removal and needs_tau, automatic)
    args.alpha_schedule = args.alpha_schedule or "linear"
    if args.learning_rate is None:
        args.learning_rate = automatic_learning_rate(modality)
        automatic.append(f"learning rate {args.learning_rate:g} ({modality})")
    fixed_tau = args.tau
    if fixed_tau is None and needs_tau and class_removal and (num_labels or 0) > 1:
        fixed_tau = math.log(num_labels)
        automatic.append(f"τ = log(num_labels) = {fixed_tau:.3f} (class removal: the loss of a uniform guess, as "
                         "held-out data cannot show the loss of a class the model never saw)")
    samples_per_step = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    fraction = n_forget / (n_forget + n_retain)
    alpha0 = args.alpha if args.alpha is not None else automatic_alpha(modality, fraction, args.alpha_max)
    if args.alpha is None and needs_alpha:
        automatic.append(f"α₀ = {alpha0:.4g} ({'5/3 × forget fraction' if modality == 'image' else 'text'})")
    if args.length_multiplier is not None:
        length_multiplier = args.length_multiplier
    elif isinstance(length_multiplier, Mapping):
        length_multiplier = length_multiplier[modality]
    if args.forget_epochs is None and args.max_steps <= 0:
        batch = args.per_device_train_batch_size * args.world_size
        minimum = args.min_forget_epochs or 1
        args.forget_epochs = automatic_forget_epochs(n_forget, n_retain, batch, length_multiplier, minimum)
        automatic.append(f"{args.forget_epochs} forget-epoch(s) (⌊retain batches / (2 × forget batches)⌋"
                         + (f" × {length_multiplier:g}" if length_multiplier != 1 else "")
                         + (f", at least {minimum}" if minimum > 1 else "") + ")")
    if args.forget_epochs is not None:
        args.num_train_epochs = float(args.forget_epochs)
    steps_per_epoch = math.ceil(n_forget / samples_per_step)
    tau_samples = args.tau_max_samples
    if tau_samples is None and needs_tau and fixed_tau is None:
        steps = args.max_steps if args.max_steps > 0 else args.forget_epochs * steps_per_epoch
        refreshes = 1 + (math.ceil(steps / steps_per_epoch) - 1) // args.tau_refresh_epochs
        # each step runs B forget + B retain samples: 2 × samples_per_step forward-backward passes
        tau_samples = automatic_tau_samples(2 * samples_per_step, steps, refreshes)
        automatic.append(f"τ from at most {tau_samples} validation rows per refresh (≤ 5 % of the run's compute)")
    if one_shot:
        automatic = [a for a in automatic if not a.startswith(("learning rate", f"{args.forget_epochs} forget-epoch"))]
    return RunPlan(modality, fraction, alpha0, samples_per_step, steps_per_epoch, fixed_tau, tau_samples, automatic)
