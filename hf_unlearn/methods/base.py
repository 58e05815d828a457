"""The method registry: a method is a pure objective plus a description of what it needs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ObjectiveInputs:
    """Everything an objective may read: per-sample losses, logits and scalars, never a model or a dataset.

    ``forget_losses`` / ``retain_losses`` are 1-D tensors (``None`` when the method does not use that half);
    ``ref_forget_losses`` are the frozen reference model's per-sample forget losses (methods with
    ``needs_reference``); ``forget_token_counts`` the supervised tokens per forget sequence (causal LMs; ``None``
    for classifiers), for objectives on the sequence log-probability; ``hparams`` holds the method's own
    hyperparameters by name. With ``retain_loss="kl"`` the ``retain_losses`` are per-sample KL(p_ref ‖ p_θ).
    Methods with ``needs_logits`` also get the model's logits per half (``forget_logits`` / ``retain_logits``,
    ``[batch, classes]``) and, with ``needs_reference``, the reference model's (``ref_forget_logits`` /
    ``ref_retain_logits``, no gradient). ``progress`` is the fraction of the run's optimizer steps done (0 at the
    first step) and ``epoch`` the forget-epochs done, for methods with phases. ``retain_token_counts`` are the
    retain rows' supervised tokens (causal LMs); with ``pooled`` (``UnlearningArguments.token_mean="pooled"``)
    :meth:`forget_mean` / :meth:`retain_mean` pool all tokens of the batch (Σ n_i·L_i / Σ n_i, the reduction of
    transformers' own loss and open-unlearning's terms) instead of averaging the rows' token means. Methods with
    ``needs_hidden`` get ``hidden``: the chosen layer's output per half (``forget`` / ``retain``, ``[B, T, H]``,
    with gradients), the reference's on retain rows (``ref_retain``, no gradient) and each half's supervised-token
    mask (``forget_mask`` / ``retain_mask``, ``[B, T]``, positions whose label is not -100). Methods with
    ``needs_tau`` also get ``heldout_losses``: the per-sample held-out losses τ is the mean of (1-D, sorted), and on
    single-label tasks ``heldout_labels``, their classes in the same order; methods
    with ``needs_logits`` the forget rows' labels (``forget_labels``).
    """

    forget_losses: torch.Tensor | None
    retain_losses: torch.Tensor | None
    tau: torch.Tensor | float | None = None
    alpha: float = 0.0
    ref_forget_losses: torch.Tensor | None = None
    forget_token_counts: torch.Tensor | None = None
    hparams: dict[str, float] = field(default_factory=dict)
    forget_logits: torch.Tensor | None = None
    retain_logits: torch.Tensor | None = None
    ref_forget_logits: torch.Tensor | None = None
    ref_retain_logits: torch.Tensor | None = None
    progress: float = 0.0
    epoch: float = 0.0
    retain_token_counts: torch.Tensor | None = None
    pooled: bool = False
    hidden: dict[str, torch.Tensor] | None = None
    heldout_losses: torch.Tensor | None = None
    heldout_labels: torch.Tensor | None = None
    forget_labels: torch.Tensor | None = None

    def forget_mean(self) -> torch.Tensor:
        """Mean forget loss: over rows, or pooled over tokens (``pooled``, causal LMs)."""
        return token_mean(self.forget_losses, self.forget_token_counts if self.pooled else None)

    def retain_mean(self) -> torch.Tensor:
        """Mean retain loss: over rows, or pooled over tokens (``pooled``, causal LMs)."""
        return token_mean(self.retain_losses, self.retain_token_counts if self.pooled else None)


Objective = Callable[[ObjectiveInputs], torch.Tensor]
Relabel = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
BatchLoss = Callable[[torch.nn.Module, dict], torch.Tensor]
# one_shot(model, forget_batches, full_batches, batch_loss, hparams) -> summary metrics; edits the model in place
OneShot = Callable[[torch.nn.Module, Iterable[dict], Iterable[dict], BatchLoss, dict[str, float]], dict[str, float]]


@dataclass(frozen=True)
class Method:
    """A registered unlearning method.

    Attributes:
        name: registry key (``UnlearningArguments.method``).
        objective: pure function ``ObjectiveInputs -> scalar loss`` (``None`` for one-shot methods).
        uses_forget / uses_retain: which half of each paired batch the objective reads (the other half is not
            run through the model).
        needs_tau: τ (held-out loss) is computed and refreshed for it.
        needs_alpha: the α schedule applies to it.
        needs_reference: a frozen copy of the original model is built (and only then).
        supports_kl_retain: ``retain_loss="kl"`` applies (the retain term becomes the KL to the reference on retain
            rows; the reference is then built for it).
        needs_hidden: the objective reads one layer's hidden states (``ObjectiveInputs.hidden``; the layer is the
            hyperparameter ``hidden_layer``); with ``needs_reference`` the reference runs on the retain rows only,
            for its hidden states.
        prepare: ``prepare(model, hparams)`` runs once before the optimizer is built (e.g. RMU freezes every
            parameter it does not update).
        needs_logits: the objective reads logits (and, with ``needs_reference``, the reference's logits on both
            halves it uses) besides per-sample losses.
        tasks: the tasks (``losses.TASKS``) the method applies to; empty = all.
        one_shot: a method without training steps: ``one_shot(model, forget_batches, full_batches, batch_loss,
            hparams)`` edits the model in place and returns summary metrics; ``full_batches`` iterates the whole
            training data (retain ∪ forget), ``batch_loss(model, batch)`` is the mean loss of a batch.
            `UnlearningTrainer.train()` runs it instead of the training loop.
        relabel: replaces the forget labels before the forward pass (random-label methods); classification only.
        length_multiplier: run length relative to the automatic number of forget-epochs; one number, or one per
            modality (``{"text": 2.0, "image": 1.0}``).
        hparams: names of the hyperparameters the objective reads (``ObjectiveInputs.hparams``). Each one's value is
            ``UnlearningArguments.method_kwargs[name]`` if given, else the argument of that name if it is set (the
            flat aliases ``npo_beta``, ``scrub_*``, ``ssd_*`` and the shared ``retain_weight``), else
            ``defaults[name]``.
        defaults: the method's own hyperparameters and their defaults (a new method declares its knobs here).
        check: ``check(hparams)`` raises ``ValueError`` for a value out of range (run by `UnlearningArguments`).
        automatic: ``automatic(args, task, modality, class_removal, notes)`` fills the method's own automatic
            choices on ``args`` where the user gave none (run by the trainer's plan before the shared rules; it
            appends a line per choice to ``notes``; ∇τ picks its push here).
    """

    name: str
    objective: Objective | None = None
    uses_forget: bool = True
    uses_retain: bool = True
    needs_tau: bool = False
    needs_alpha: bool = False
    needs_reference: bool = False
    supports_kl_retain: bool = False
    needs_logits: bool = False
    needs_hidden: bool = False
    prepare: Callable[[torch.nn.Module, dict[str, Any]], None] | None = None
    tasks: tuple[str, ...] = ()
    one_shot: OneShot | None = None
    relabel: Relabel | None = None
    length_multiplier: float | Mapping[str, float] = 1.0
    hparams: tuple[str, ...] = ()
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None
    automatic: Callable[..., None] | None = None


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (a new method is one small module that calls this)."""
    if method.name in METHODS:
        raise ValueError(f"A method named {method.name!r} is already registered.")
    if (method.objective is None) == (method.one_shot is None):
        raise ValueError(f"Method {method.name!r} needs exactly one of objective= (trained) or one_shot= (no steps).")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """Look a method up by name; ``ValueError`` lists the valid names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(
            f"Unknown unlearning method {name!r}. Valid methods: {', '.join(sorted(METHODS))}."
        ) from None


def mean(losses: torch.Tensor) -> torch.Tensor:
    """Mean in float32 (objectives are computed in fp32 under mixed precision)."""
    return losses.float().mean()


def token_mean(losses: torch.Tensor, token_counts: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-row token-mean losses (fp32); with ``token_counts``, pooled over tokens: Σ n_i·L_i / Σ n_i."""
    if token_counts is None:
        return mean(losses)
    counts = token_counts.to(device=losses.device, dtype=torch.float32)
    return (losses.float() * counts).sum() / counts.sum().clamp(min=1.0)
