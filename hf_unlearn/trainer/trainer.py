"""`UnlearningTrainer`: a `transformers.Trainer` whose every step pairs a forget batch with a retain batch."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections import defaultdict
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq, Trainer
from transformers.trainer_utils import SchedulerType

from .._torch import eval_mode, zero3
from ..data.checks import check_forget_retain, is_class_removal
from ..data.collators import ForgetRetainCollator, automatic_fusion
from ..data.sampling import ForgetRetainPairs, ForgetRetainSampler
from ..hidden import capture, resolve_layer, step_hidden
from ..hub.push import check_hub_access
from ..losses import PerSampleLoss, get_loss_fn, infer_task, per_sample_losses
from ..masking import batch_rows, drop_unsupervised, kept_token_counts
from ..methods import ObjectiveInputs, get_method
from ..reference import kl_retain_losses, method_reference_outputs, reference_outputs
from .arguments import UnlearningArguments
from .callbacks import NonFiniteGuard, TauStop
from .deepspeed_reference import prepare_deepspeed_reference
from .fingerprint import job_fingerprint
from .head_refit import HeadRefit
from .heldout import PriorRepair, measure_heldout
from .peft import wrap_with_peft
from .persistence import PersistenceMixin
from .plan import alpha_at, plan_run
from .replay import replayed, retain_pool
from .reporting import ReportingMixin
from .setup import check_datasets, check_method, held_out_validation, unlearning_arguments

logger = logging.getLogger(__name__)

METRIC_KEYS = ("alpha", "tau", "forget_loss", "retain_loss", "forget_gap")


class UnlearningTrainer(PersistenceMixin, ReportingMixin, Trainer):
    """Unlearn ``forget_dataset`` from ``model`` while keeping ``retain_dataset``, with the ∇τ method by default.

    Every optimizer step sees one forget batch and one retain batch (``per_device_train_batch_size`` each, per
    device). One Trainer epoch is one pass over the forget set; the retain stream continues across epochs.
    τ (the mean per-sample loss on ``validation_dataset``, held-out data the model never trained on) is computed
    before the first step and every ``args.tau_refresh_epochs`` forget-epochs.
    """

    _tag_names = ["hf-unlearn", "machine-unlearning"]

    def __init__(
        self,
        model=None,
        args: UnlearningArguments | None = None,
        forget_dataset=None,
        retain_dataset=None,
        validation_dataset=None,
        eval_dataset=None,
        data_collator=None,
        processing_class=None,
        compute_metrics=None,
        callbacks=None,
        loss_fn: PerSampleLoss | None = None,
        ref_model=None,
        peft_config=None,
        **kwargs,
    ):
        args = unlearning_arguments(args)
        self.method = get_method(args.method)
        self.kl_retain = args.retain_loss == "kl"
        check_method(args, self.method)
        check_forget_retain(forget_dataset, retain_dataset)
        self.task = args.task or (None if loss_fn else infer_task(model))
        self.loss_fn = loss_fn or get_loss_fn(self.task)
        self._plan(args, getattr(model, "config", None), forget_dataset, retain_dataset)
        validation_dataset = held_out_validation(validation_dataset, eval_dataset, self.method, self.fixed_tau)
        check_datasets(args, self.method, self.task, getattr(model, "config", None), forget_dataset, retain_dataset,
                       validation_dataset)
        self.job = job_fingerprint(args, args.method_hparams(), self.samples_per_step, forget_dataset, retain_dataset,
                                   validation_dataset)
        self._fresh_adapters = peft_config is not None
        if peft_config is not None:
            model = wrap_with_peft(model, peft_config, args.gradient_checkpointing)
        if args.push_to_hub:  # before Trainer creates the repo: a missing token or no network fails in one line
            check_hub_access(args.hub_token)
        if data_collator is None and self.task == "causal_lm" and processing_class is not None:
            data_collator = DataCollatorForSeq2Seq(processing_class, label_pad_token_id=-100, padding=True)
        super().__init__(
            model=model,
            args=args,
            train_dataset=None,
            eval_dataset=eval_dataset,
            data_collator=data_collator,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            **kwargs,
        )
        self.forget_dataset, self.retain_dataset = forget_dataset, retain_dataset
        self.validation_dataset = validation_dataset
        self.train_dataset = forget_dataset
        self._init_unlearning(args, ref_model)

    def _plan(self, args: UnlearningArguments, config: Any, forget_dataset: Any, retain_dataset: Any) -> None:
        """Resolve the run's automatic defaults (`plan_run`) into declared trainer attributes."""
        self.plan = plan = plan_run(
            args, task=self.task, needs_tau=self.method.needs_tau, length_multiplier=self.method.length_multiplier,
            n_forget=len(forget_dataset), n_retain=len(retain_dataset), num_labels=getattr(config, "num_labels", None),
            class_removal=self.method.needs_tau and is_class_removal(forget_dataset, retain_dataset),
            needs_alpha=self.method.needs_alpha, one_shot=self.method.one_shot is not None)
        self.modality, self.forget_fraction, self.alpha0 = plan.modality, plan.forget_fraction, plan.alpha0
        self.samples_per_step, self.steps_per_forget_epoch = plan.samples_per_step, plan.steps_per_forget_epoch
        self.fixed_tau, self.tau_samples = plan.fixed_tau, plan.tau_samples

    def _init_unlearning(self, args: UnlearningArguments, ref_model: Any) -> None:
        """The unlearning state after `Trainer.__init__`: pairing collator, reference model, τ, α, callbacks."""
        self.loss_is_scaled_for_ga = False
        self.pair_collator = ForgetRetainCollator(self.data_collator,
                                                  fused=automatic_fusion(args.fuse_forget_retain, self.task))
        needs_reference = self.method.needs_reference or self.kl_retain
        self.ref_model = self._build_reference(ref_model) if needs_reference else None
        if self.method.prepare is not None:  # e.g. RMU freezes what it does not update, before the optimizer
            self.method.prepare(self.model, args.method_hparams())
        self.tau: float | None = None
        self.heldout_losses: torch.Tensor | None = None
        self.heldout_labels: torch.Tensor | None = None  # single-label tasks: the held-out rows' classes
        self.prior_repair = PriorRepair(self) if args.prior_repair else None  # its callback
        self.heldout_prior: torch.Tensor | None = None  # the original's mean prediction there (prior_repair)
        self.prior_shift: float | None = None
        self.last_audit = self.last_comparison = None
        #: card metadata (finetuned_from, dataset, license, language, tags) for save_model / push_to_hub cards
        self.card_metadata: dict[str, Any] = {}
        self.tau_step = -1
        self.tau_history: list[dict[str, float]] = []
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self._relabel_generator = torch.Generator().manual_seed(args.seed)
        self.nonfinite = NonFiniteGuard(self.accelerator, args.max_nonfinite_steps)
        self.add_callback(self.nonfinite)
        if args.head_refit:  # before the prior repair, which then balances the refitted layer's bias
            self.add_callback(HeadRefit(self))
        if self.prior_repair:
            self.add_callback(self.prior_repair)
        #: the retain stream with the original's least confident fits repeated (retain_replay), else None
        self.retain_pool = retain_pool(self, args.retain_replay) if args.retain_replay else None
        self.tau_stop = TauStop(self) if args.stop_at_tau and self.method.needs_tau else None
        if self.tau_stop is not None:
            self.add_callback(self.tau_stop)
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(self._tag_names + [args.method])
        if self.plan.automatic and self.is_world_process_zero():
            logger.warning("hf-unlearn automatic choices: %s.", "; ".join(self.plan.automatic))

    # ----------------------------------------------------------------- run length, α₀ and the LR schedule
    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """Linear decay to ``lr_min_ratio`` × LR (the paper's 0.1×) after warmup; other types as in Trainer."""
        ratio = self.args.lr_min_ratio
        linear = SchedulerType(self.args.lr_scheduler_type) == SchedulerType.LINEAR
        if self.lr_scheduler is None and linear and ratio > 0:
            warmup = self.args.get_warmup_steps(num_training_steps)

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / (warmup + 1)
                progress = (step - warmup) / max(1, num_training_steps - warmup)
                return max(ratio, 1.0 - (1.0 - ratio) * progress)

            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def current_alpha(self) -> float:
        """α at the current optimizer step (the same for every micro-batch of an accumulation step)."""
        total = self.state.max_steps or 1
        return alpha_at(self.state.global_step, total, self.alpha0, self.args.alpha_schedule)

    # ----------------------------------------------------------------------------------- data loading
    def get_train_dataloader(self) -> DataLoader:
        """Batches of ``(forget, retain)`` pairs, fused into one padded batch when possible."""
        forget, retain = (self._strip(d, name) for d, name in ((self.forget_dataset, "forget"),
                                                              (self.retain_dataset, "retain")))
        if self.retain_pool is not None:
            retain = replayed(retain, self.retain_pool)
        self.sampler = ForgetRetainSampler(len(forget), len(retain), self.samples_per_step,
                                           seed=self.args.data_seed if self.args.data_seed is not None
                                           else self.args.seed)
        loader = DataLoader(
            ForgetRetainPairs(forget, retain),
            batch_size=self._train_batch_size,
            sampler=self.sampler,
            collate_fn=self.pair_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            drop_last=False,
        )
        return self.accelerator.prepare(loader)

    def _strip(self, dataset, description: str):
        if isinstance(dataset, datasets.Dataset):
            return self._remove_unused_columns(dataset, description=description)
        return dataset

    # ------------------------------------------------------------------------------------------- τ
    def compute_tau(self) -> float:
        """Mean per-sample loss on the validation set (eval mode, no gradients, averaged over all processes);
        the fixed τ when one is set (``args.tau``, or log(num_labels) for class removal)."""
        if self.fixed_tau is not None:
            return float(self.fixed_tau)
        first = self.prior_repair is not None and self.heldout_prior is None  # the original: its mean prediction too
        held = measure_heldout(self, with_logits=first)
        heldout = held.losses
        if heldout.numel() == 0:
            raise ValueError("The validation set is empty: τ needs held-out samples.")
        if first and held.logits is not None:
            self.heldout_prior = self.prior_repair.target(held.logits)
        tau = float(heldout.double().mean())
        # the quantile gate's targets (tau_target), sorted, on the device; their classes for the per-class gate
        self.heldout_losses, self.heldout_labels = heldout, held.labels
        if not math.isfinite(tau):
            raise ValueError(
                f"τ is not finite ({tau}): the model's loss on the validation set is NaN/inf. Check the validation "
                "labels (inside the model's label range) and inputs, and the model's weights."
            )
        return tau

    def _maybe_refresh_tau(self) -> None:
        step = self.state.global_step
        every = self.args.tau_refresh_epochs * self.steps_per_forget_epoch
        refresh = self.fixed_tau is None and step != self.tau_step and step > 0 and step % every == 0
        if self.tau is None or refresh:
            self.tau = self.compute_tau()
            self.tau_step = step
            self.tau_history.append({"step": step, "tau": self.tau})

    # ---------------------------------------------------------------------------------- the step
    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.method.needs_tau:
            self._maybe_refresh_tau()
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The method's objective over one paired batch (a plain batch, e.g. in `evaluate`, gets mean loss)."""
        if "num_forget" not in inputs and "forget" not in inputs:
            losses, logits = self._per_sample(model, inputs)
            return (losses.mean(), {"logits": logits}) if return_outputs else losses.mean()
        method = self.method
        layer = resolve_layer(model, self.args.method_hparams()["hidden_layer"]) if method.needs_hidden else None
        with capture(model, layer) if method.needs_hidden else contextlib.nullcontext() as caught:
            forget_losses, retain_losses, forget_inputs, logits, halves = self._paired_losses(model, inputs)
        hidden = step_hidden(self, model, caught, inputs, forget_inputs, halves["retain_inputs"], layer) \
            if method.needs_hidden else None
        ref = method_reference_outputs(self, model, forget_inputs, halves["retain_inputs"], self._per_sample) \
            if method.needs_reference else {}
        ref_losses, counts = ref.get("forget_losses"), None
        if self.kl_retain and halves["retain_logits"] is not None:
            retain_in = halves["retain_inputs"]
            retain_losses = kl_retain_losses(lambda fn: reference_outputs(self.accelerator, self.ref_model, model, fn),
                                             retain_in, halves["retain_logits"],
                                             self.task or infer_task(model, retain_in["labels"]))
        forget_losses, retain_losses, ref_losses = drop_unsupervised(self.task, inputs, forget_losses, retain_losses,
                                                                     ref_losses)
        retain_counts = None
        if self.task == "causal_lm":  # supervised tokens of the rows drop_unsupervised kept
            counts = kept_token_counts(forget_inputs) if forget_losses is not None else None
            retain_counts = kept_token_counts(halves["retain_inputs"]) if retain_losses is not None else None
        alpha = self.current_alpha() if method.needs_alpha else 0.0
        hparams = self.args.method_hparams()
        step = self.state.global_step
        logit_kw = dict(forget_logits=halves["forget_logits"], retain_logits=halves["retain_logits"],
                        forget_labels=forget_inputs.get("labels") if forget_inputs else None,
                        **ref.get("logits", {})) if method.needs_logits else {}
        loss = method.objective(
            ObjectiveInputs(forget_losses, retain_losses, tau=self.tau, alpha=alpha,
                            ref_forget_losses=ref_losses, forget_token_counts=counts, hparams=hparams,
                            progress=step / max(1, self.state.max_steps),
                            epoch=step / max(1, self.steps_per_forget_epoch), retain_token_counts=retain_counts,
                            pooled=self.args.token_mean == "pooled", hidden=hidden,
                            heldout_losses=self.heldout_losses if self.fixed_tau is None else None,
                            heldout_labels=self.heldout_labels if self.fixed_tau is None else None, **logit_kw)
        )
        self._record(alpha, forget_losses, retain_losses)
        if self.model.training:
            self.nonfinite.flag(loss)
        return (loss, {"logits": logits}) if return_outputs else loss

    def _per_sample(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        return per_sample_losses(model, inputs, loss_fn=self.loss_fn)

    def _paired_losses(self, model, inputs):
        """Per-sample forget and retain losses: one forward pass over a fused batch, or one per half.

        Returns ``(forget losses, retain losses, forget inputs, logits, halves)``; ``halves`` holds the retain inputs
        and each half's logits. With ``tau_gate="eval"`` (∇τ) the forget half runs in eval mode (no dropout, with
        gradients) and the retain half in train mode: two passes, also for a fused batch.
        """
        method = self.method
        eval_gate = self.args.tau_gate == "eval" and method.needs_tau and method.uses_forget and model.training
        if "num_forget" in inputs and eval_gate:  # one pass cannot switch dropout off for the forget rows only
            rest = {k: v for k, v in inputs.items() if k != "num_forget"}
            n = int(inputs["num_forget"])
            inputs = {"forget": batch_rows(rest, 0, n), "retain": batch_rows(rest, n, None)}
        if "num_forget" in inputs:
            inputs = dict(inputs)
            n = int(inputs.pop("num_forget"))
            forget_in, retain_in = batch_rows(inputs, 0, n), batch_rows(inputs, n, None)
            if method.relabel is not None:
                inputs["labels"] = inputs["labels"].clone()
                inputs["labels"][:n] = self._relabel(inputs["labels"][:n])
            if not method.uses_retain:
                inputs = batch_rows(inputs, 0, n)
            elif not method.uses_forget:
                inputs = batch_rows(inputs, n, None)
            losses, logits = self._per_sample(model, inputs)
            offset = n if method.uses_forget else 0
            forget = losses[:n] if method.uses_forget else None
            retain = losses[offset:] if method.uses_retain else None
            halves = {"retain_inputs": retain_in, "forget_logits": logits[:n] if method.uses_forget else None,
                      "retain_logits": logits[offset:] if method.uses_retain else None}
            return forget, retain, forget_in, logits, halves
        forget_in, retain_in = inputs["forget"], inputs["retain"]
        forget = retain = logits = forget_logits = None
        if method.uses_forget:
            batch = dict(forget_in)
            if method.relabel is not None:
                batch["labels"] = self._relabel(batch["labels"])
            with eval_mode(model) if eval_gate else contextlib.nullcontext():
                forget, forget_logits = self._per_sample(model, batch)
            logits = forget_logits
        if method.uses_retain:
            retain, logits = self._per_sample(model, retain_in)
        halves = {"retain_inputs": retain_in, "forget_logits": forget_logits,
                  "retain_logits": logits if method.uses_retain else None}
        return forget, retain, forget_in, logits, halves

    def _relabel(self, labels: torch.Tensor) -> torch.Tensor:
        num_classes = getattr(self.accelerator.unwrap_model(self.model).config, "num_labels", 0)
        return self.method.relabel(labels, num_classes, self._relabel_generator)

    def _record(self, alpha: float, forget_losses, retain_losses) -> None:
        """Keep this step's metrics as detached tensors (no device sync per step; reduced at log time)."""
        if not self.model.training:
            return
        if self.method.needs_alpha:
            self._metrics["alpha"].append(alpha)
        if self.tau is not None:
            self._metrics["tau"].append(self.tau)
        if forget_losses is not None:
            forget_mean = forget_losses.detach().float().mean()
            self._metrics["forget_loss"].append(forget_mean)
            if self.tau_stop is not None:
                self.tau_stop.observe(forget_mean)
            if self.tau is not None:
                self._metrics["forget_gap"].append(self.tau - forget_mean)
        if retain_losses is not None:
            self._metrics["retain_loss"].append(retain_losses.detach().float().mean())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the unlearning metrics (averaged since the last log and over processes) to training logs."""
        if "loss" in logs and self._metrics:
            keys = [k for k in METRIC_KEYS if self._metrics.get(k)]
            values = torch.stack([torch.as_tensor(self._metrics[k], dtype=torch.float32, device=self.args.device)
                                  .mean() if not torch.is_tensor(self._metrics[k][0])
                                  else torch.stack(self._metrics[k]).float().mean() for k in keys])
            values = self.accelerator.reduce(values, reduction="mean") if self.accelerator.num_processes > 1 else values
            logs.update({k: round(float(v), 6) for k, v in zip(keys, values.tolist())})
            logs["nonfinite_steps"] = self.nonfinite.skipped
            if self.tau_stop is not None and self.tau_stop.stopped_at is not None:
                logs["stopped_at_tau"] = self.tau_stop.stopped_at
            self._metrics.clear()
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------- reference model
    def _build_reference(self, ref_model):
        """A frozen copy of the model before unlearning (only for NPO, or ``retain_loss="kl"``)."""
        if ref_model is None and self._fresh_adapters:
            return None  # the base model with the (fresh) adapters disabled is the reference: no copy
        ref = ref_model if ref_model is not None else copy.deepcopy(self.accelerator.unwrap_model(self.model))
        ref.eval()
        ref.requires_grad_(False)
        if self.is_deepspeed_enabled:
            if zero3(self.args) and ref_model is None:
                raise ValueError(
                    f"method={self.args.method!r} needs a frozen reference model; under DeepSpeed ZeRO-3 the model's "
                    "parameters are already sharded and cannot be copied. Load the original model again and pass "
                    "it as ref_model=... (it is then sharded as well)."
                )
            return prepare_deepspeed_reference(ref, self.accelerator)
        return self.accelerator.prepare_model(ref, evaluation_mode=True)
