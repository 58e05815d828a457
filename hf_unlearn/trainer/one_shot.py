"""One-shot methods (no optimizer steps, e.g. SSD): what `UnlearningTrainer.train()` runs in place of the training
loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from torch.utils.data import ConcatDataset, DataLoader
from transformers.trainer_utils import TrainOutput


def run_one_shot(trainer, *, forget: Any, retain: Any, batch_loss: Callable, fresh_adapters: bool = False,
                 resume_from_checkpoint=None) -> TrainOutput:
    """Apply ``trainer.method.one_shot`` to ``trainer.model`` and return a `TrainOutput` (0 steps).

    The method sees batches of ``forget`` and of the full training data (``retain`` ∪ ``forget``, in that order;
    both with the model's columns only), ``per_device_train_batch_size`` rows each, unshuffled; every process reads
    all of them (no sharding), so all processes make the same edit. ``batch_loss(model, batch)`` is the mean loss of
    a collated batch. Logs ``train_runtime`` and the method's summary through ``trainer.log``; reads only the
    public `Trainer` API (args, state, control, callback_handler, data_collator, log).
    """
    if resume_from_checkpoint:
        raise ValueError(f"method={trainer.args.method!r} is one-shot (no training steps): there is no checkpoint "
                         "to resume from. Run train() without resume_from_checkpoint.")
    if fresh_adapters:
        raise ValueError(f"method={trainer.args.method!r} edits the trained weights once; fresh PEFT adapters hold "
                         "none of the model's knowledge. Run it without peft_config (on the full model).")
    args = trainer.args

    def batches(dataset):
        return DataLoader(dataset, batch_size=args.per_device_train_batch_size, shuffle=False,
                          collate_fn=trainer.data_collator, num_workers=args.dataloader_num_workers)

    state, control = trainer.state, trainer.control
    state.max_steps, state.global_step, state.epoch = 0, 0, 0.0
    trainer.control = trainer.callback_handler.on_train_begin(args, state, control)
    start = time.perf_counter()
    hparams = args.method_hparams()
    summary = trainer.method.one_shot(trainer.model, batches(forget), batches(ConcatDataset([retain, forget])),
                                      batch_loss, hparams)
    metrics = {"train_runtime": round(time.perf_counter() - start, 4), **(summary or {})}
    trainer.log(dict(metrics))
    trainer.control = trainer.callback_handler.on_train_end(args, state, trainer.control)
    return TrainOutput(global_step=0, training_loss=0.0, metrics=metrics)
