"""`UnlearningArguments`: `TrainingArguments` plus the ∇τ knobs and the rules that derive them from data sizes."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, fields
from typing import Any

from transformers import TrainingArguments

from ..methods import get_method

logger = logging.getLogger(__name__)

ALPHA_SCHEDULES = ("linear", "constant")
MODALITIES = ("auto", "text", "image")
TAU_GATES = ("train", "eval")
#: the prior repair's targets (hf_unlearn/trainer/heldout.py)
PRIOR_TARGETS = ("original", "retain_shares")


@dataclass
class UnlearningArguments(TrainingArguments):
    r"""Configuration for [`UnlearningTrainer`]: every `TrainingArguments` field, plus the following.

    Parameters that control the method:
        method (`str`, defaults to `"nabla_tau"`): registered method name (`nabla_tau`, `finetune`,
            `gradient_ascent`, `grad_diff`, `npo`, `simnpo`, `rmu`, `random_labels`, `scrub`, `ssd`).
        alpha (`float` or `None`): starting weight α₀ of the forget term. `None` = automatic: 0.5 for text;
            for images min(5/3 × forget fraction, `alpha_max`), the paper's rule.
        alpha_schedule (`str` or `None`): `"linear"` decays α to 0 over the run; `"constant"` keeps α₀. `None` =
            automatic: constant with ∇τ's relabel push, linear (the paper's) otherwise.
        forget_push (`str` or `None`): how ∇τ moves forget rows below their target. `"ascent"` (the paper's) raises
            their loss; `"relabel"` descends towards the model's own prediction with the row's label masked out;
            `"calibrated"` towards that prediction with the label keeping probability e^(−the row's target loss).
            `None` = automatic: relabel for single-label text classification (with `tau_target="quantiles"`,
            constant α and learning rate 6e-4: docs/method.md), ascent elsewhere.
        tau_target (`str` or `None`): `"mean"` (the paper's: the batch-mean forget loss towards τ), `"quantiles"`
            (each forget row, by rank, towards the held-out loss at that rank) or `"class_quantiles"` (by rank within
            its class, against held-out rows of that class; single-label). `None` = automatic (see above).
        tau (`float` or `None`): a fixed τ. `None` = automatic: the mean validation loss, except for class removal
            (no forget class left in the retain set), where held-out data of the remaining classes cannot show the
            loss of a class the model never saw: τ = log(num_labels), the loss of a uniform guess.
        tau_refresh_epochs (`int`, defaults to 5): recompute τ (mean held-out loss) every this many forget-epochs.
        tau_max_samples (`int` or `None`): estimate τ on a seeded subsample of the validation set of this size.
            `None` = automatic: as many rows as keep the τ passes within 5% of the run's compute (one training
            sample ≈ 3 forward passes), at least 128; `0` = every validation row.
        tau_gate (`str`, defaults to `"eval"`): how ∇τ measures the forget loss it compares with τ: `"eval"`
            (no dropout on the forget half, like τ; chosen on dev rows, docs/method.md) or `"train"` (the paper's).
        retain_weight (`float`, defaults to 1.0): λ of the retain term for `grad_diff` and `npo`; γ
            (task-loss weight on retain) for `scrub`.
        retain_loss (`str`, defaults to `"nll"`): retain term of `grad_diff` and `npo`: `nll` (the task loss) or
            `kl` (KL(p_original ‖ p_θ) on the retain rows; builds a frozen copy of the original model).
        token_mean (`str`, defaults to `"row"`): causal LMs: the objectives' means over rows of each row's token-mean
            loss (`"row"`) or over the batch's supervised tokens (`"pooled"`, transformers' reduction); τ: rows.
        method_kwargs (`dict` or `None`): the method's own hyperparameters by name (JSON on the command line, e.g.
            `--method_kwargs '{"npo_beta": 0.2}'`); each method declares them and their defaults
            (`Method.hparams` / `Method.defaults`), so a new method is one module. The flat arguments below are
            aliases (unset = the method's default); giving one both ways with different values is an error.
        npo_beta (`float`, NPO's default 0.1): β of NPO, an inverse temperature on the log-likelihood ratio of each
            forget *sequence* (sum over its supervised tokens, as in the NPO paper): the push on a sequence fades
            once it is about e^{1/β} times less likely than under the original model (β → 0: gradient ascent).
        scrub_kl_weight, scrub_temperature, scrub_msteps: SCRUB's α (KL weight on retain, 0.5), temperature T (4)
            and max-step forget-epochs (`None` = the first half of the run), as in its reference implementation.
        ssd_alpha, ssd_lambda: SSD's selection weighting α (automatic: 0.5 / forget fraction) and dampening
            constant λ (1).

    Parameters that control the run length:
        forget_epochs (`int` or `None`): passes over the forget set; each pass is one Trainer epoch and the retain
            stream continues across them. `None` = automatic: ⌊retain batches / (2 × forget batches)⌋ (about half a
            pass over the retain set, at least 1), times `length_multiplier`.
        length_multiplier (`float` or `None`): the automatic length relative to that rule. `None` = the method's:
            2 for ∇τ on text (chosen on GoEmotions dev rows, where the memorised forget set needs the longer run),
            1 for ∇τ on images (the paper's rule), 2 for `finetune` and `scrub`, else 1.
        min_forget_epochs (`int` or `None`): the automatic length's floor in forget-epochs. `None` = the method's: 4
            for ∇τ's relabel push (at 30 % forget the rule above gives 2 passes, too few for each forget row to reach
            its target; chosen on GoEmotions dev rows, docs/method.md), else 1. Ignored when `forget_epochs` is set.
            `num_train_epochs` is an alias: set one of them (setting both to different values is an error).
            `max_steps > 0` overrides both, as in `TrainingArguments`.

    Parameters that control data and the step:
        task (`str` or `None`): per-sample loss (`single_label`, `multi_label`, `causal_lm`,
            `image_classification`); `None` infers it from the model and labels.
        modality (`str`, defaults to `"auto"`): `text` or `image` selects the α₀ rule; `auto` reads the model.
        stop_at_tau (`bool`, defaults to `False`): adaptive length: end after the first forget-epoch in which the
            forget loss sat at τ (at or above τ in at least half its batches); `forget_epochs` stays the upper bound.
        prior_repair (`bool` or `None`): after the run, shift the classifier's output bias until the model's mean
            prediction on the held-out (τ) rows is `prior_target`: undoes the class-prior shift a forget push leaves
            on unseen data (single-label classification, not class removal). `None` = on with the relabel push.
        prior_target (`str`, defaults to `"retain_shares"`): the repair's target: the original's mean prediction
            there with each class's logit moved by log(retain share / all rows' share) (`"retain_shares"`: the label
            shift a retrained model sees; reads the forget and retain rows' classes), or as it is (`"original"`).
        retain_replay (`int`, defaults to 0): put the original's lowest-confidence quartile of the retain rows (the
            low-margin fits a push flips) this many more times into the retain stream; single-label. With
            `alpha=0.75`, RMIA −0.05 to −0.08 at the same retain accuracy, up to −4.5 points on unseen rows.
        head_refit (`bool`, defaults to `False`): after the run, refit the output layer on the retain rows with ∇τ's
            forget term, its penalty chosen on the held-out rows (single-label). Not the default: on GoEmotions it
            kept the layer, on BANKING77 it fitted retain and unseen rows better than retraining and the forget rows
            with them (docs/method.md).
        fuse_forget_retain (`bool` or `None`): one forward pass over the forget+retain batch padded together
            (`None` = automatic: one pass for classifiers when the collator can, two for causal LMs, whose
            full-vocabulary logits make two half-size passes leaner; `False` = two passes).

    Parameters that control `output_dir`:
        overwrite_output_dir (`bool`, defaults to `False`): let `train()` start (not resume) in an `output_dir` that
            already holds a saved model, which the final `save_model` then replaces.
        keep_checkpoints (`bool`, defaults to `True`): `False` deletes the checkpoint-* folders (partly unlearned
            weights) once the final `save_model` succeeded.
        push_checkpoints (`bool`, defaults to `False`): with `push_to_hub`, also push during training (Trainer's
            `hub_strategy`, default then `"every_save"`). Without it `hub_strategy` is always `"end"`: only the final
            unlearned model is pushed, never weights of a partly unlearned state.

    > Defaults that differ from `TrainingArguments`: `learning_rate=None` = the paper's 3e-4 for text and 1e-3 for
    > images (for causal LMs start lower, e.g. 5e-5–1e-4: 3e-4 overshot τ on SmolLM2-135M);
    > `lr_scheduler_type="linear"` decays to `lr_min_ratio` (0.1) × the learning rate instead of 0; the run length
    > is derived from the data sizes (`forget_epochs`) instead of `num_train_epochs=3`; `save_strategy="no"`
    > (unlearning runs are short; checkpoints of partly unlearned weights are opt-in); `logging_steps=10`.
    """

    method: str = field(default="nabla_tau", metadata={"help": "Unlearning method (registry name)."})
    alpha: float | None = field(
        default=None,
        metadata={"help": "Start weight α₀ in [0, 1]; None = automatic (text 0.5, images 5/3×forget fraction)."},
    )
    alpha_max: float = field(default=0.9, metadata={"help": "Cap of the automatic image α₀ rule."})
    alpha_schedule: str | None = field(
        default=None, metadata={"help": "'linear' (α₀ → 0) or 'constant'; None = automatic (docs/api.md).",
                                "choices": list(ALPHA_SCHEDULES)}
    )
    tau: float | None = field(
        default=None,
        metadata={"help": "Fixed τ (None = the held-out loss; class removal: log(num_labels))."},
    )
    tau_refresh_epochs: int = field(
        default=5, metadata={"help": "Recompute τ on the validation set every N forget-epochs (paper: 5)."}
    )
    tau_max_samples: int | None = field(
        default=None,
        metadata={"help": "Validation rows for τ, seeded sample (None = automatic, 0 = all)."},
    )
    forget_epochs: int | None = field(
        default=None,
        metadata={"help": "Passes over the forget set (None = automatic, docs/api.md)."},
    )
    length_multiplier: float | None = field(
        default=None,
        metadata={"help": "Run length × the paper's rule; None = the method's (nabla_tau: 2 on text, 1 "
                  "on images; finetune, scrub: 2)."},
    )
    min_forget_epochs: int | None = field(
        default=None,
        metadata={"help": "Least forget-epochs of the automatic length (None: 4 with relabel, else 1)."},
    )
    num_train_epochs: float | None = field(
        default=None, metadata={"help": "Alias of forget_epochs for Trainer users; leave unset or equal to it."}
    )
    stop_at_tau: bool = field(
        default=False,
        metadata={"help": "End after the first forget-epoch with the forget loss at τ."},
    )
    prior_repair: bool | None = field(
        default=None,
        metadata={"help": "After the run, shift the output bias back to prior_target on the held-out rows; "
                          "None = on with the relabel push."},
    )
    prior_target: str = field(
        default="retain_shares",
        metadata={"help": "The prior repair's target: the original's held-out prediction under the retain "
                          "shares, or as it is.",
                  "choices": list(PRIOR_TARGETS)},
    )
    retain_replay: int = field(
        default=0,
        metadata={"help": "Replay the original's least confident retain quartile this many more times; 0 = off."},
    )
    head_refit: bool = field(
        default=False, metadata={"help": "Refit the output layer after the run (off; docs/method.md)."},
    )
    tau_gate: str = field(
        default="eval",
        metadata={"help": "∇τ's forget loss: 'eval' (no dropout, like τ) or 'train' (the paper's).",
                  "choices": list(TAU_GATES)},
    )
    tau_target: str | None = field(
        default=None, metadata={"help": "∇τ's target: 'mean' (the paper's), 'quantiles' (per row, by rank) or "
                                "'class_quantiles' (by rank within the row's class); None = automatic.",
                                "choices": ["mean", "quantiles", "class_quantiles"]}
    )
    forget_push: str | None = field(
        default=None, metadata={"help": "∇τ's push: 'ascent' (the paper's), 'relabel' or 'calibrated' (relabel "
                                "to the row's target); None = automatic.",
                                "choices": ["ascent", "relabel", "calibrated"]}
    )
    retain_weight: float = field(
        default=1.0, metadata={"help": "λ of the retain term in grad_diff and npo; γ (retain task loss) in scrub."}
    )
    retain_loss: str = field(
        default="nll", metadata={"help": "nll, or kl (to the original; nabla_tau/grad_diff/npo)."}
    )
    token_mean: str = field(
        default="row", metadata={"help": "Causal LMs, how a batch's losses are averaged: 'row' (mean over rows of "
                                 "each row's token mean) or 'pooled' (all supervised tokens of the batch pooled, as "
                                 "transformers' own loss and open-unlearning do).", "choices": ["row", "pooled"]}
    )
    method_kwargs: dict | str | None = field(
        default=None, metadata={"help": "The method's own hyperparameters as JSON, e.g. '{\"npo_beta\": 0.2}' (the "
                                "flat npo_beta / scrub_* / ssd_* arguments are aliases)."}
    )
    npo_beta: float | None = field(
        default=None, metadata={"help": "β of NPO (default 0.1): inverse temperature on each forget "
                                "sequence's summed log-likelihood ratio."}
    )
    scrub_kl_weight: float | None = field(
        default=None, metadata={"help": "SCRUB: weight α of the teacher KL on retain (default and reference: 0.5)."}
    )
    scrub_temperature: float | None = field(
        default=None, metadata={"help": "SCRUB: distillation temperature T (default and reference: 4)."}
    )
    scrub_msteps: int | None = field(
        default=None,
        metadata={"help": "SCRUB: forget-epochs with max-steps, min-steps only after (None = first half of the run; "
                  "reference: 3 of 6 epochs)."},
    )
    ssd_alpha: float | None = field(
        default=None, metadata={"help": "SSD: dampen weights whose forget importance > α × full importance "
                                "(default: automatic, 0.5 / forget fraction; the paper's 10 selects nothing once the "
                                "forget set exceeds a tenth of the data)."}
    )
    ssd_lambda: float | None = field(
        default=None, metadata={"help": "SSD: dampening constant λ (default and reference: 1)."}
    )
    task: str | None = field(
        default=None,
        metadata={"help": "single_label | multi_label | causal_lm | image_classification (None = infer)."},
    )
    modality: str = field(default="auto", metadata={"help": "auto | text | image: picks the automatic α₀ rule."})
    fuse_forget_retain: bool | None = field(
        default=None, metadata={"help": "One forward pass over forget+retain (None = classifiers: when possible; "
                                "causal LMs: two passes, leaner)."}
    )
    lr_min_ratio: float = field(
        default=0.1, metadata={"help": "Linear LR schedule decays to this fraction of the LR (paper: 0.1)."}
    )
    max_nonfinite_steps: int = field(
        default=10, metadata={"help": "Stop with an error after this many steps in a row with a NaN/inf loss."}
    )
    keep_checkpoints: bool = field(
        default=True, metadata={"help": "Keep checkpoint-* folders (partly unlearned weights) after the final save."}
    )
    merge_adapter: bool = field(
        default=False, metadata={"help": "With PEFT adapters, save the merged plain model instead of the adapter."}
    )
    push_checkpoints: bool = field(
        default=False, metadata={"help": "Also push checkpoint-* folders (partly unlearned weights) to the Hub."}
    )
    hub_strategy: str | None = field(
        default=None, metadata={"help": "Trainer's hub strategy: 'end' unless push_checkpoints (then default "
                                "'every_save'); checkpoints hold partly unlearned weights."}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": "AdamW learning rate. None = the paper's: 3e-4 text, 1e-3 images."}
    )
    save_strategy: str = field(default="no", metadata={"help": "Checkpoint strategy: 'no', 'steps' or 'epoch'."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "DDP: search for unused parameters each step (off: every objective uses all)."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace a model already saved in output_dir (else train() refuses)."}
    )

    def __post_init__(self):
        self._num_train_epochs_given = self.num_train_epochs is not None
        if isinstance(self.method_kwargs, str):
            try:
                self.method_kwargs = json.loads(self.method_kwargs)
            except json.JSONDecodeError:
                raise ValueError(f"method_kwargs={self.method_kwargs!r} is not a JSON object; pass e.g. "
                                 '\'{"npo_beta": 0.2}\'.') from None
        self._check_finite()
        if self.num_train_epochs is not None:
            epochs = float(self.num_train_epochs)
            if epochs <= 0 or epochs != int(epochs):
                raise ValueError(
                    f"num_train_epochs={self.num_train_epochs} must be a positive whole number of forget-epochs; "
                    "prefer forget_epochs, or leave both unset for the automatic length."
                )
            if self.forget_epochs is not None and int(epochs) != self.forget_epochs:
                raise ValueError(
                    f"num_train_epochs={self.num_train_epochs} contradicts forget_epochs={self.forget_epochs}; "
                    "they mean the same thing here (one epoch = one pass over the forget set): set only one."
                )
            self.forget_epochs = int(epochs)
        else:
            self.num_train_epochs = float(self.forget_epochs or 1)
        strategy = getattr(self.hub_strategy, "value", self.hub_strategy)
        if not self.push_checkpoints and strategy not in (None, "end"):
            logger.warning("hub_strategy=%r pushes partly unlearned weights during training; using 'end' (pass "
                           "push_checkpoints=True to push them).", strategy)
        self.hub_strategy = (strategy or "every_save") if self.push_checkpoints else "end"
        self._validate()
        super().__post_init__()

    def _check_finite(self) -> None:
        """Every number given (Trainer's too, and method_kwargs) is finite: NaN would silently change the run."""
        given = [(f.name, getattr(self, f.name)) for f in fields(self) if f.init]
        kwargs = self.method_kwargs if isinstance(self.method_kwargs, dict) else {}
        for name, value in given + list(kwargs.items()):  # every number, Trainer's too
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
                raise ValueError(f"{name}={value} is not a finite number; pass a finite value (see --help for its "
                                 "range), or leave it unset for the default.")

    def _validate(self) -> None:
        method = get_method(self.method)
        if method.check is not None:
            method.check(self.method_hparams())
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**32:
                raise ValueError(f"{name}={value} must be in [0, 2**32 - 1] (a random seed, e.g. 42).")
        if self.tau is not None and not (self.tau > 0 and math.isfinite(self.tau)):
            raise ValueError(f"tau={self.tau} must be a positive finite loss value, or None for automatic.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0, or None for the paper's default.")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha} is outside [0, 1]; use a value in [0, 1] or None for automatic.")
        if not 0.0 < self.alpha_max <= 1.0:
            raise ValueError(f"alpha_max={self.alpha_max} must be in (0, 1].")
        if self.alpha_schedule not in (None, *ALPHA_SCHEDULES):
            raise ValueError(f"alpha_schedule={self.alpha_schedule!r}; choose one of {', '.join(ALPHA_SCHEDULES)}.")
        if self.tau_refresh_epochs < 1:
            raise ValueError(
                f"tau_refresh_epochs={self.tau_refresh_epochs} must be ≥ 1 (τ is refreshed every N forget-epochs; "
                "use a large N to refresh rarely)."
            )
        if self.tau_max_samples is not None and self.tau_max_samples < 0:
            raise ValueError(
                f"tau_max_samples={self.tau_max_samples} must be ≥ 0 (0 = all validation rows, None = automatic)."
            )
        if self.forget_epochs is not None and self.forget_epochs < 1:
            raise ValueError(f"forget_epochs={self.forget_epochs} must be ≥ 1, or None for the automatic length.")
        if self.min_forget_epochs is not None and self.min_forget_epochs < 1:
            raise ValueError(f"min_forget_epochs={self.min_forget_epochs} must be ≥ 1, or None for the method's.")
        if self.retain_replay < 0:
            raise ValueError(f"retain_replay={self.retain_replay} must be ≥ 0 (0 = no replay).")
        if self.length_multiplier is not None and not self.length_multiplier > 0:
            raise ValueError(f"length_multiplier={self.length_multiplier} must be > 0, or None for the method's.")
        if self.modality not in MODALITIES:
            raise ValueError(f"modality={self.modality!r}; choose one of {', '.join(MODALITIES)}.")
        if self.max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps={self.max_nonfinite_steps} must be ≥ 1.")
        if self.retain_loss not in ("nll", "kl"):
            raise ValueError(f"retain_loss={self.retain_loss!r}; choose 'nll' (the task loss) or 'kl' (KL to the "
                             "original model on retain rows).")
        if self.token_mean not in ("row", "pooled"):
            raise ValueError(f"token_mean={self.token_mean!r}; choose 'row' or 'pooled'.")
        if self.prior_target not in PRIOR_TARGETS:
            raise ValueError(f"prior_target={self.prior_target!r}; choose one of {', '.join(PRIOR_TARGETS)}.")
        if self.tau_gate not in TAU_GATES:
            raise ValueError(f"tau_gate={self.tau_gate!r}; choose one of {', '.join(TAU_GATES)}.")
        if self.retain_weight < 0:
            raise ValueError(f"retain_weight={self.retain_weight} must be ≥ 0.")
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise ValueError(f"lr_min_ratio={self.lr_min_ratio} must be in [0, 1].")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be ≥ 1.")

    def method_hparams(self) -> dict[str, Any]:
        """The selected method's hyperparameters (``Method.hparams``): ``method_kwargs``, else the argument of that
        name when set, else the method's default."""
        method, given = get_method(self.method), dict(self.method_kwargs or {})
        if not isinstance(self.method_kwargs, (dict, type(None))):
            raise ValueError(f"method_kwargs must be a dict of {self.method}'s hyperparameters, not "
                             f"{type(self.method_kwargs).__name__}.")
        unknown = sorted(set(given) - set(method.hparams))
        if unknown:
            raise ValueError(f"method_kwargs {unknown} are not hyperparameters of {self.method!r}; it reads: "
                             f"{', '.join(method.hparams) or 'none'}.")
        defaults = {f.name: f.default for f in fields(self)}
        values = {}
        for name in method.hparams:
            flat = getattr(self, name, None)
            is_set = name in defaults and flat != defaults[name]
            if name in given and is_set and flat != given[name]:
                raise ValueError(f"{name} is {flat!r} but method_kwargs gives {given[name]!r}; set it one way.")
            if name in given:
                values[name] = given[name]
            elif name in defaults and (is_set or name not in method.defaults):
                values[name] = flat
            elif name in method.defaults:
                values[name] = method.defaults[name]
            else:
                raise ValueError(f"Method {self.method!r} reads {name!r}, which has no default; pass it in "
                                 "method_kwargs.")
        return values
