"""The held-out (τ) rows as `UnlearningTrainer` measures them — per-row losses, classes and logits — and the prior
repair that uses their mean prediction (``UnlearningArguments.prior_repair``).

The prior repair: the forget push moves every forget row of a class away from that class, and a model that no longer
predicts its forget rows' labels also predicts those classes less on unseen rows (on GoEmotions at 30 % forget the
majority class lost a third of its predictions; docs/method.md). A retrained model keeps the original's class
balance on unseen data. So after the run the classifier's output bias b is shifted until the model's mean predicted
distribution on the held-out rows matches the original's, measured on the same rows before the first step:

    b ← b + log p̄_original − log mean_i softmax(z_i + b)      (repeated to a fixed point)

Only the ``num_labels`` output biases change; no held-out row's label is read (their predictions only).

``prior_target="retain_shares"``: a retrained model is trained on the retain rows' class shares, not all rows', so
its prior on unseen data is the original's shifted by that label shift — a class that lost a third of its rows to
the forget set is predicted less (on BANKING77, a few rows a class, restoring the original's prior handed forget
rows their class back; this target did not: docs/method.md). The target is then the original's mean prediction with each
class's logit moved by log(retain share / all rows' share) (counts + ½), read from the forget and retain rows'
labels (counts only, never logged): p̄ = mean_i softmax(z_i^original + log w).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import datasets
import torch
from transformers import TrainerCallback

try:  # FSDP2 shards parameters as DTensors (a torch build without torch.distributed has none)
    from torch.distributed.tensor import DTensor, distribute_tensor
except ImportError:  # pragma: no cover
    DTensor = distribute_tensor = None

from .._torch import zero3
from ..data.selection import sample_rows
from ..masking import supervised_rows

logger = logging.getLogger(__name__)

#: fixed-point iterations of the bias solve (it converges in tens on GoEmotions' 28 classes)
PRIOR_ITERATIONS = 200


@dataclass
class HeldOut:
    """One pass over the held-out rows: losses (sorted), their classes (same order; None unless single-label),
    logits (row order; only when asked for and single-label) and ``layer``'s inputs (row order; when asked for)."""

    losses: torch.Tensor
    labels: torch.Tensor | None
    logits: torch.Tensor | None
    inputs: torch.Tensor | None = None


def row_pass(trainer, dataset, with_logits: bool = False, layer: torch.nn.Module | None = None) -> HeldOut:
    """``dataset``'s per-sample losses, classes, (``with_logits``) logits and (``layer``) the inputs the model gives
    that layer (one vector a row, e.g. a classifier's features), in row order: eval mode, no gradients, gathered over
    all processes (every process gets the same tensors, in the same order); rows without a supervised target are
    dropped."""
    loader = trainer.get_eval_dataloader(dataset)
    model = trainer.model_wrapped if trainer.model_wrapped is not None else trainer.model
    was_training = model.training
    model.eval()
    seen: dict[str, torch.Tensor] = {}
    hook = None if layer is None else layer.register_forward_pre_hook(lambda _, args: seen.update(x=args[0]))
    parts_: dict[str, list[torch.Tensor]] = {}  # on the device: synced once per batch, concatenated after
    try:
        with torch.no_grad():
            for batch in loader:
                batch = trainer._prepare_inputs(batch)
                losses, logits = trainer._per_sample(model, batch)
                losses = losses.detach().float()
                kept = supervised_rows(batch.get("labels"), trainer.task, len(losses)).to(losses.device)
                labels = batch.get("labels")
                single = labels is not None and labels.dim() == 1 and logits is not None and logits.dim() == 2
                parts = {"losses": torch.where(kept > 0, losses, 0.0), "kept": kept,
                         "labels": labels if single else torch.full_like(kept, -1).long()}
                if with_logits and single:
                    parts["logits"] = logits.detach().float()
                if layer is not None and seen.get("x") is not None and seen["x"].dim() == 2:
                    parts["inputs"] = seen.pop("x").detach().float()
                for key, value in trainer.accelerator.gather_for_metrics(parts).items():
                    parts_.setdefault(key, []).append(value)
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)
    if not parts_:
        return HeldOut(torch.zeros(0), None, None)
    kept = torch.cat(parts_["kept"]) > 0
    labels = torch.cat(parts_["labels"])[kept]
    whole = {key: torch.cat(parts_[key])[kept] if len(parts_.get(key, ())) == len(parts_["losses"]) else None
             for key in ("logits", "inputs")}
    return HeldOut(torch.cat(parts_["losses"])[kept], labels if bool((labels >= 0).all()) else None, **whole)


def tau_rows(trainer):
    """The held-out rows τ is measured on: a seeded sample of ``trainer.tau_samples`` validation rows."""
    return sample_rows(trainer.validation_dataset, trainer.tau_samples, trainer.args.seed)


def measure_heldout(trainer, with_logits: bool = False) -> HeldOut:
    """The held-out rows' per-sample losses (sorted), their classes (in the same order) and (``with_logits``)
    logits (row order) under the current model (`row_pass` over the τ rows)."""
    rows = row_pass(trainer, tau_rows(trainer), with_logits)
    losses, order = torch.sort(rows.losses)
    return HeldOut(losses, None if rows.labels is None else rows.labels[order], rows.logits)


def mean_prediction(logits: torch.Tensor) -> torch.Tensor:
    """The mean predicted class distribution over rows (float64)."""
    return torch.softmax(logits.double(), dim=-1).mean(0)


def prior_shift(logits: torch.Tensor, target: torch.Tensor, iterations: int = PRIOR_ITERATIONS) -> torch.Tensor:
    """The output-bias shift b with mean_i softmax(z_i + b) = ``target`` (fixed-point iteration, float64; b sums
    to 0, as softmax ignores a common offset)."""
    z = logits.double()
    log_target = torch.log(target.double().to(z.device).clamp(min=1e-12))
    shift = torch.zeros(z.shape[-1], dtype=torch.float64, device=z.device)
    for _ in range(iterations):
        shift = shift + log_target - torch.log(mean_prediction(z + shift).clamp(min=1e-12))
    return shift - shift.mean()


def dataset_labels(dataset) -> list[int] | None:
    """Each row's class (the ``labels`` or ``label`` column or key, one int a row), or None when a row has none."""
    if isinstance(dataset, datasets.Dataset):
        column = next((c for c in ("labels", "label") if c in dataset.column_names), None)
        values = dataset.with_format(None)[column] if column else []
    else:
        values = [row.get("labels", row.get("label")) if isinstance(row, Mapping) else None for row in dataset]
    values = [int(v) if isinstance(v, torch.Tensor) and v.numel() == 1 else v for v in values]
    return values if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values) else None


def share_log_ratio(forget, retain, num_labels: int) -> torch.Tensor | None:
    """log(retain share / share among all rows) of each class, counts + ½ (float64): how a classifier's log-prior
    moves when it is trained on the retain rows instead of all of them; None without one class per row."""
    forget_labels, retain_labels = dataset_labels(forget), dataset_labels(retain)
    if forget_labels is None or retain_labels is None:
        return None
    kept = torch.bincount(torch.tensor(retain_labels), minlength=num_labels)[:num_labels].double() + 0.5
    every = kept + torch.bincount(torch.tensor(forget_labels), minlength=num_labels)[:num_labels].double()
    return torch.log(kept / kept.sum()) - torch.log(every / every.sum())


def output_layer(model: torch.nn.Module, num_labels: int) -> torch.nn.Linear | None:
    """The classifier's output layer: the last linear layer with ``num_labels`` outputs, a bias, and trainable (so a
    saved adapter or model keeps a change to it); None when there is none."""
    found = None
    for module in model.modules():
        if (isinstance(module, torch.nn.Linear) and module.out_features == num_labels and module.bias is not None
                and module.bias.requires_grad):
            found = module
    return found


def output_bias(model: torch.nn.Module, num_labels: int) -> torch.nn.Parameter | None:
    """The output layer's bias (`output_layer`), or None."""
    layer = output_layer(model, num_labels)
    return None if layer is None else layer.bias


def add_in_place(param: torch.nn.Parameter, shift: torch.Tensor) -> None:
    """``param += shift`` in place, also for a parameter sharded by FSDP2 (a DTensor: the shift is distributed
    alike)."""
    shift = shift.to(device=param.device, dtype=param.dtype)
    if DTensor is not None and isinstance(param, DTensor):
        shift = distribute_tensor(shift, param.device_mesh, param.placements)
    with torch.no_grad():
        param.add_(shift)


def full_tensor(param: torch.Tensor) -> torch.Tensor:
    """``param`` whole (an FSDP2 shard gathered), detached."""
    return (param.full_tensor() if DTensor is not None and isinstance(param, DTensor) else param).detach()


class PriorRepair(TrainerCallback):
    """Measures the original's mean prediction on the held-out rows before the first step (∇τ's first τ pass
    measures it on the way; other methods, and a fixed τ, take one pass here) and shifts the output bias back to it
    after the last (`prior_shift`), logging ``prior_shift`` (the largest |b|)."""

    def __init__(self, trainer):
        if zero3(trainer.args):
            raise ValueError("prior_repair=True cannot shift an output bias that DeepSpeed ZeRO-3 partitions across "
                             "ranks; run with ZeRO-1/2 (or FSDP2, or one process) or leave prior_repair off.")
        self.trainer = trainer

    def target(self, logits: torch.Tensor) -> torch.Tensor:
        """The repair's target from the original's held-out logits: their mean prediction, with the retain set's
        class shares (``prior_target="retain_shares"``) or as it is ("original")."""
        z = logits.double()
        if self.trainer.args.prior_target == "retain_shares":
            ratio = share_log_ratio(self.trainer.forget_dataset, self.trainer.retain_dataset, z.shape[-1])
            if ratio is None:
                raise ValueError("prior_target='retain_shares' counts the forget and retain rows' classes: give "
                                 "them a 'labels' column (one int a row) or pass prior_target='original'.")
            z = z + ratio.to(z.device)
        return mean_prediction(z)

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer
        tau_pass = trainer.method.needs_tau and trainer.fixed_tau is None  # its first pass measures the prior
        if trainer.heldout_prior is None and not tau_pass:
            logits = measure_heldout(trainer, with_logits=True).logits
            trainer.heldout_prior = None if logits is None else self.target(logits)

    def on_train_end(self, args, state, control, **kwargs):
        trainer = self.trainer
        model = trainer.accelerator.unwrap_model(trainer.model)
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        bias = output_bias(model, num_labels) if num_labels else None
        if trainer.heldout_prior is None or bias is None:
            logger.warning("prior_repair: %s; the output bias is left as trained.",
                           "no held-out prediction of the original was measured" if bias is not None else
                           "the model has no trainable output bias with num_labels outputs")
            return
        logits = measure_heldout(trainer, with_logits=True).logits
        shift = prior_shift(logits, trainer.heldout_prior)
        add_in_place(bias, shift)
        trainer.prior_shift = float(shift.abs().max())
        state.log_history.append({"prior_shift": round(trainer.prior_shift, 4), "step": state.global_step})
        logger.info("prior_repair: output bias shifted by at most %.3f.", trainer.prior_shift)
