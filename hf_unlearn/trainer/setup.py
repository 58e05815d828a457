"""What `UnlearningTrainer.__init__` checks before `Trainer.__init__`: its arguments, the method against them, the
validation split τ is computed on, and the datasets against the model and the method. Each error is one line naming
the input and the fix."""

from __future__ import annotations

import logging
from typing import Any

from ..data.checks import check_model_inputs, is_class_removal
from ..data.holdout import check_held_out
from ..methods import METHODS, Method
from .arguments import UnlearningArguments

logger = logging.getLogger(__name__)
#: tasks with one class per row (None: not yet inferred): where the prior repair and the retain replay apply
ONE_CLASS_TASKS = (None, "single_label", "image_classification")


def unlearning_arguments(args: Any) -> UnlearningArguments:
    """``args``, or the defaults when None; ``ValueError`` for plain `TrainingArguments`."""
    if args is None:
        args = UnlearningArguments(output_dir="unlearning_output")
    if not isinstance(args, UnlearningArguments):
        raise ValueError(
            f"args is a {type(args).__name__}; UnlearningTrainer needs UnlearningArguments (it extends "
            "TrainingArguments with method, alpha, tau_refresh_epochs, ...)."
        )
    return args


def check_method(args: UnlearningArguments, method: Method) -> None:
    """The retain loss the arguments ask for must be one the method supports."""
    if args.retain_loss == "kl" and not method.supports_kl_retain:
        kl = ", ".join(sorted(name for name, m in METHODS.items() if m.supports_kl_retain))
        raise ValueError(f"retain_loss='kl' applies to {kl}, not method={args.method!r}; use retain_loss='nll'.")


def held_out_validation(validation_dataset: Any, eval_dataset: Any, method: Method, fixed_tau: float | None) -> Any:
    """The dataset τ is computed on: ``validation_dataset``, else ``eval_dataset`` (with a warning); ``ValueError``
    when the method needs τ from data and there is neither."""
    if validation_dataset is None and method.needs_tau and fixed_tau is None:
        if eval_dataset is None:
            raise ValueError(
                "No validation_dataset: τ is the mean loss on held-out data the model never trained on (a "
                "validation split). Pass validation_dataset=... . The retain set cannot serve: the model "
                "trained on it, so its loss is too low and the forget loss would never be pushed up."
            )
        logger.warning("No validation_dataset given: τ is computed on eval_dataset, which must be held-out data.")
        validation_dataset = eval_dataset
    return validation_dataset


def check_datasets(args: UnlearningArguments, method: Method, task: str | None, config: Any, forget_dataset: Any,
                   retain_dataset: Any, validation_dataset: Any) -> None:
    """Every dataset fits the model (inputs, labels, vocabulary), the method fits the task, and forget, retain and
    validation share no rows."""
    if args.retain_replay and task not in ONE_CLASS_TASKS:
        raise ValueError(f"retain_replay={args.retain_replay} ranks retain rows by a classifier's confidence in their "
                         f"one class; task={task!r} has none. Leave retain_replay at 0.")
    if args.head_refit and task not in ONE_CLASS_TASKS:
        raise ValueError(f"head_refit=True refits a classifier's output layer on one class a row; task={task!r} has "
                         "none. Leave head_refit off.")
    if args.head_refit and validation_dataset is None:
        raise ValueError("head_refit=True chooses its penalty on held-out rows: pass validation_dataset=... or leave "
                         "head_refit off.")
    for dataset, name in ((forget_dataset, "forget_dataset"), (retain_dataset, "retain_dataset"),
                          (validation_dataset, "validation_dataset")):
        check_model_inputs(dataset, name=name, task=task, num_labels=getattr(config, "num_labels", None),
                           vocab_size=getattr(config, "vocab_size", None), config=config)
    if method.relabel is not None and task == "causal_lm":
        raise ValueError(f"method={args.method!r} relabels classes; it does not apply to causal LMs.")
    if method.tasks and task is not None and task not in method.tasks:
        raise ValueError(f"method={args.method!r} applies to {', '.join(method.tasks)}, not "
                         f"task={task!r}; choose another method (nabla_tau, npo, grad_diff fit every task).")
    if args.prior_repair:
        if task not in ONE_CLASS_TASKS:
            raise ValueError(f"prior_repair=True shifts a classifier's output bias; task={task!r} has none. Leave "
                             "prior_repair off.")
        if validation_dataset is None:
            raise ValueError("prior_repair=True needs held-out rows to measure the class prior on: pass "
                             "validation_dataset=... or leave prior_repair off.")
        if is_class_removal(forget_dataset, retain_dataset):
            raise ValueError("prior_repair=True restores the original's class prior, which removing a class must "
                             "change; leave prior_repair off for class removal.")
    check_held_out(forget_dataset, retain_dataset, validation_dataset)
