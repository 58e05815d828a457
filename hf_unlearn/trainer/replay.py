"""Retain replay: the retain rows the original fits least confidently, drawn ``retain_replay`` more times.

The rows a forget push erases from the retain set are not the ones near the forget rows: they are the rows the
original memorised with the smallest margins — the rare classes' rows, its lowest-confidence quartile — which any
move of the weights flips, and which a run that sees each retain row about once cannot fit again
(`benchmarks/retain_damage.py`, docs/method.md). ``retain_replay=k`` puts the original's lowest-confidence quartile
of the retain rows k more times into the retain stream the sampler draws from (the run's length, derived from the
retain set's size, is unchanged): the fragile rows come round k + 1 times as often as the others. The quartile is
read once, from the model as passed to the trainer (the original), before any step; a resumed run reads the same.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch
from torch.utils.data import Subset

from .._torch import zero3
from .heldout import row_pass

#: the share of the retain rows replayed: the original's least confident fits
REPLAY_QUANTILE = 0.25


def fragile_rows(losses: torch.Tensor) -> np.ndarray:
    """Indices of the rows whose loss is at least its (1 − `REPLAY_QUANTILE`) quantile: on one class per row, the
    least confident fits (the loss log(1 + e^(−confidence)) falls as the logit confidence rises)."""
    values = losses.detach().double().cpu().numpy()
    return np.nonzero(values >= np.quantile(values, 1.0 - REPLAY_QUANTILE))[0]


def replay_pool(n_retain: int, fragile: np.ndarray, times: int) -> list[int]:
    """Every retain row once, then the fragile rows ``times`` more times: the stream the sampler permutes."""
    return list(range(n_retain)) + [int(i) for i in fragile] * times


def retain_pool(trainer, times: int) -> list[int]:
    """The replay pool of ``trainer``'s retain set, read from its model (the original) in one eval pass gathered
    over all processes: every rank computes the same pool."""
    if zero3(trainer.args):
        raise ValueError("retain_replay reads the original's outputs before the first step, which DeepSpeed ZeRO-3 "
                         "partitions across ranks; run with ZeRO-1/2 (or FSDP2, or one process) or leave it at 0.")
    rows = row_pass(trainer, trainer.retain_dataset)
    if rows.labels is None or len(rows.losses) != len(trainer.retain_dataset):
        raise ValueError("retain_replay needs one class per retain row (single-label classification); leave "
                         "retain_replay at 0.")
    return replay_pool(len(trainer.retain_dataset), fragile_rows(rows.losses), times)


def replayed(dataset, pool: list[int]):
    """``dataset`` read through ``pool`` (rows repeated as the pool repeats them)."""
    if isinstance(dataset, datasets.Dataset):
        return dataset.select(pool)
    return Subset(dataset, pool)
