"""`retain_replay`: the retain rows the original fits least confidently come round k + 1 times as often, the run's
length unchanged."""

import copy
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import overfit, tiny_bert, token_dataset
from transformers import default_data_collator

from hf_unlearn import UnlearningArguments, UnlearningTrainer
from hf_unlearn.audit import model_confidences
from hf_unlearn.trainer.replay import REPLAY_QUANTILE, fragile_rows, replay_pool, retain_pool


def _trainer(tmp_path, model, forget, retain, **kw):
    kw.setdefault("method", "nabla_tau")
    args = UnlearningArguments(str(tmp_path / "out"), report_to=[], per_device_train_batch_size=8, disable_tqdm=True,
                               seed=0, logging_steps=1, save_strategy="no", forget_epochs=3, **kw)
    return UnlearningTrainer(model=model, args=args, forget_dataset=forget, retain_dataset=retain,
                             validation_dataset=token_dataset(32, 1), data_collator=default_data_collator)


def test_replay_pool_repeats_the_fragile_rows():
    pool = replay_pool(5, np.array([1, 3]), 2)
    assert Counter(pool) == {0: 1, 1: 3, 2: 1, 3: 3, 4: 1}


def test_fragile_rows_are_the_originals_least_confident_quartile():
    train = token_dataset(40, 0)
    model = tiny_bert()
    confidence = model_confidences(model, train, data_collator=default_data_collator)
    losses = torch.log1p(torch.exp(-torch.tensor(confidence)))  # the cross-entropy of a one-class row
    fragile = fragile_rows(losses)
    assert set(fragile.tolist()) == set(np.nonzero(confidence <= np.quantile(confidence, REPLAY_QUANTILE))[0])
    assert len(fragile) == 10 and confidence[fragile].max() < np.delete(confidence, fragile).min()


def test_the_trainer_draws_the_fragile_rows_more_often_over_a_run_of_the_same_length(tmp_path):
    train = token_dataset(48, 0)
    model = overfit(tiny_bert(), train, epochs=10, out=str(tmp_path / "original"))
    forget, retain = train.select(range(8)), train.select(range(8, 48))
    plain = _trainer(tmp_path / "plain", copy.deepcopy(model), forget, retain, retain_replay=0)
    replay = _trainer(tmp_path / "replay", copy.deepcopy(model), forget, retain, retain_replay=2)
    losses = torch.log1p(torch.exp(-torch.tensor(model_confidences(model, retain,
                                                                   data_collator=default_data_collator))))
    fragile = fragile_rows(losses)
    assert plain.retain_pool is None
    assert Counter(replay.retain_pool) == {i: 3 if i in set(fragile.tolist()) else 1 for i in range(len(retain))}
    # the replayed stream: every row of the retain set, the fragile ones three times, read through the pool
    loader = replay.get_train_dataloader()
    assert len(loader.dataset.retain) == len(retain) + 2 * len(fragile)
    plain.train()
    replay.train()
    assert replay.state.max_steps == plain.state.max_steps  # the length rule reads the retain set, not the pool


def test_retain_replay_refusals(tmp_path):
    with pytest.raises(ValueError, match="retain_replay=-1 must be ≥ 0"):
        UnlearningArguments(str(tmp_path), retain_replay=-1)
    train = token_dataset(24, 0)
    with pytest.raises(ValueError, match="task='multi_label' has none. Leave retain_replay at 0"):
        _trainer(tmp_path, tiny_bert(), train.select(range(8)), train.select(range(8, 24)), retain_replay=1,
                 task="multi_label")


def test_retain_replay_refuses_parameters_partitioned_by_zero3():
    trainer = SimpleNamespace(args=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3)))
    with pytest.raises(ValueError, match="retain_replay reads the original's outputs before the first step, which "
                                         "DeepSpeed ZeRO-3 partitions"):
        retain_pool(trainer, 2)
