"""The library's one seeded sampler (:func:`seeded_permutation`), and pairing forget and retain samples with it: one
forget-epoch per Trainer epoch, a retain stream that never restarts.

Every random draw of rows goes through :func:`seeded_permutation` (torch's ``randperm`` with its own generator): the
forget fraction, the held-out rows, ``sample_rows``, the audit's row caps and class balancing, the training order.

The order is a pure function of ``(seed, epoch, position)``, so a resumed run (Trainer skips the batches it has
already seen) and every rank under DDP (Accelerate shards the batches of one global sequence) see exactly the
samples an uninterrupted single-process run would.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def seeded_permutation(n: int, seed: int) -> torch.Tensor:
    """A seeded random order of ``range(n)``, independent of the global RNG state: the one sampler of the library."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) % (2**63)))


def seeded_subset(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` of ``range(n)`` drawn by :func:`seeded_permutation`, in ascending order (all of them when ``k >= n``)."""
    if k >= n:
        return np.arange(n)
    return np.sort(seeded_permutation(n, seed)[:k].numpy())


class ForgetRetainPairs(Dataset):
    """Map-style dataset indexed by ``(forget index, retain index)`` pairs; yields ``(forget row, retain row)``."""

    def __init__(self, forget, retain):
        self.forget = forget
        self.retain = retain

    def __len__(self) -> int:
        return len(self.forget)

    def __getitem__(self, pair: tuple[int, int]):
        fi, ri = pair
        return self.forget[int(fi)], self.retain[int(ri)]

    def __getitems__(self, pairs: list[tuple[int, int]]) -> list[tuple]:
        """A batch of pairs with one batched read per dataset (what DataLoader's fetcher calls when present)."""
        forget = _rows(self.forget, [int(f) for f, _ in pairs])
        retain = _rows(self.retain, [int(r) for _, r in pairs])
        return list(zip(forget, retain))


def _rows(dataset, indices: list[int]) -> list:
    if hasattr(dataset, "__getitems__"):
        return list(dataset.__getitems__(indices))
    return [dataset[i] for i in indices]


class ForgetRetainSampler(Sampler):
    """Yields ``(forget index, retain index)`` pairs for one forget-epoch (set it with :meth:`set_epoch`).

    Each forget-epoch is a fresh seeded permutation of the forget set, padded by wrapping around to a multiple of
    ``samples_per_step`` (the samples of one optimizer step over all ranks and accumulation steps), so every
    optimizer step is full and a forget-epoch is a whole number of steps. The retain stream continues across
    forget-epochs and reshuffles each time it is exhausted.
    """

    def __init__(self, n_forget: int, n_retain: int, samples_per_step: int, seed: int = 0):
        if n_forget < 1 or n_retain < 1:
            raise ValueError(f"Need at least one forget and one retain sample (got {n_forget} and {n_retain}).")
        self.n_forget = n_forget
        self.n_retain = n_retain
        self.samples_per_step = samples_per_step
        self.seed = seed
        self.epoch = 0
        self.epoch_length = math.ceil(n_forget / samples_per_step) * samples_per_step
        self._retain_perm = lru_cache(maxsize=4)(self._permutation_for_retain_pass)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one forget-epoch."""
        return self.epoch_length // self.samples_per_step

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.epoch_length

    def _permutation(self, n: int, stream: int, index: int) -> torch.Tensor:
        return seeded_permutation(n, self.seed * 1_000_003 + stream * 7_919 + index)

    def _permutation_for_retain_pass(self, index: int) -> torch.Tensor:
        return self._permutation(self.n_retain, 1, index)

    def forget_order(self, epoch: int) -> list[int]:
        perm = self._permutation(self.n_forget, 0, epoch).tolist()
        repeats = math.ceil(self.epoch_length / self.n_forget)
        return (perm * repeats)[: self.epoch_length]

    def retain_index(self, position: int) -> int:
        """The retain sample at a global stream position (the stream spans all forget-epochs)."""
        return int(self._retain_perm(position // self.n_retain)[position % self.n_retain])

    def __iter__(self):
        start = self.epoch * self.epoch_length
        for offset, fi in enumerate(self.forget_order(self.epoch)):
            yield fi, self.retain_index(start + offset)
