"""Shared machinery of the throughput benchmarks: step clocks, trainers taking steps in turn, peak memory.

Step time: the trainers train in threads and take optimizer steps strictly in turn (round robin), so step k of
every side runs under the same machine load, seconds apart. A step is timed from the moment its trainer gets the
turn to its ``on_step_end``: data loading, forward, backward, clipping, optimizer and scheduler step, logging.

Peak memory: memory at the training peak over the baseline right before ``train()`` (weights and data loaded):
grads + optimizer state + activations + batch. CUDA: ``torch.cuda.max_memory_allocated`` − ``memory_allocated``.
CPU: peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) − RSS, with glibc's mmap threshold pinned to
64 KiB (``mallopt``) so freed tensors return to the OS and RSS tracks live tensors; each measurement runs in a
fork of the benchmark process (same, small heap history).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import torch
import transformers
from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainerCallback

from hf_unlearn.data.sampling import ForgetRetainSampler
from hf_unlearn.provenance import cpu_name, git_commit, versions

CUDA = torch.cuda.is_available()
CLOCKS = ("wall", "cpu")


def clocks() -> tuple[float, float]:
    """(wall, process CPU) seconds."""
    if CUDA:
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


class InOrderTrainer(Trainer):
    """A plain Trainer that reads its dataset in order (the rows are already arranged step by step)."""

    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)


def plain_rows(forget: datasets.Dataset, retain: datasets.Dataset, batch: int, seed: int = 0) -> datasets.Dataset:
    """The forget + retain rows that the unlearning sampler pairs, in order: step k's 2B rows are the same on the
    plain side (batch 2B, read in order) as on the unlearning side."""
    pairs = list(ForgetRetainSampler(len(forget), len(retain), batch, seed=seed))
    order = []
    for k in range(0, len(pairs), batch):
        order += [f for f, _ in pairs[k:k + batch]] + [len(forget) + r for _, r in pairs[k:k + batch]]
    return datasets.concatenate_datasets([forget, retain]).select(order)


class Baton(TrainerCallback):
    """Makes trainers, each in its own thread, take optimizer steps strictly in turn, and times each step."""

    def __init__(self, side: str, order: Sequence[str], lock: threading.Condition, shared: dict) -> None:
        self.side, self.order, self.lock, self.shared = side, list(order), lock, shared
        self.steps: list[tuple[float, float]] = []

    def _wait_turn(self) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: self.shared["turn"] in (self.side, None), timeout=900):
                raise TimeoutError("another trainer never finished its step")
        self.start = clocks()

    def _pass_turn(self, finished: bool = False) -> None:
        with self.lock:
            if finished:
                self.shared["done"].add(self.side)
            i = self.order.index(self.side)
            rest = [s for s in self.order[i + 1:] + self.order[:i + 1] if s not in self.shared["done"]]
            self.shared["turn"] = rest[0] if rest else None
            self.lock.notify_all()

    def on_train_begin(self, args, state, control, **kwargs):
        with self.lock:
            self.shared["ready"].add(self.side)
            self.lock.notify_all()
        self._wait_turn()

    def on_step_end(self, args, state, control, **kwargs):
        end = clocks()
        self.steps.append((end[0] - self.start[0], end[1] - self.start[1]))
        self._pass_turn()
        self._wait_turn()

    def on_train_end(self, args, state, control, **kwargs):
        self._pass_turn(finished=True)


def round_robin_steps(make: Callable[[str, str, list], Trainer], order: Sequence[str]) -> dict[str, Baton]:
    """Every side trains in a thread, one step at a time in ``order``; ``make(side, out_dir, callbacks)`` builds a
    side's trainer (with τ already computed, outside the timed steps)."""
    lock, shared = threading.Condition(), {"turn": "", "ready": set(), "done": set()}
    batons, threads, errors = {}, [], []
    with tempfile.TemporaryDirectory() as out:
        for side in order:
            batons[side] = Baton(side, order, lock, shared)
            # one output_dir per side: an UnlearningTrainer holds a lock on its own (.hf_unlearn.lock)
            trainer = make(side, os.path.join(out, side.replace("/", "_")), [batons[side]])

            def train(trainer=trainer) -> None:
                try:
                    trainer.train()
                except BaseException as err:  # re-raised in the main thread
                    errors.append(err)
                    with lock:
                        shared["turn"], shared["done"] = None, set(order)
                        lock.notify_all()

            threads.append(threading.Thread(target=train, name=side))
            threads[-1].start()
            with lock:  # the trainers set up one after the other
                lock.wait_for(lambda side=side: side in shared["ready"] or errors, timeout=900)
        with lock:
            shared["turn"] = order[0]
            lock.notify_all()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return batons


class PeakMemory:
    """Bytes at the peak of a block over the bytes in use when it starts (see the module docstring)."""

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if CUDA:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD, fixed: large frees go back to the OS
            libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
            libc.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.base = _proc_status("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        self.extra = (torch.cuda.max_memory_allocated() if CUDA else _proc_status("VmHWM")) - self.base


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def in_child(fn):
    """``fn()`` in a forked child (the same heap state for every measurement); its JSON result comes by pipe."""
    if CUDA:
        return fn()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.write(write, json.dumps(fn()).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    if os.waitpid(pid, 0)[1] != 0:
        raise RuntimeError("the memory measurement failed in the child process")
    return json.loads(data)


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if CUDA else None, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            **git_commit(Path(__file__)), "versions": versions()}
