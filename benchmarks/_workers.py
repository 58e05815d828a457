"""Run a benchmark's independent tasks in worker processes, each pinned to its share of the cores.

On a small CPU one torch thread per process, one process per core, is faster than one process with several threads
(no spin-waiting between intra-op threads), and each process's CPU time stays its own.
"""

from __future__ import annotations

import os


def _worker_init(threads: int, cores: list[int]) -> None:
    """One worker process: ``threads`` torch threads, pinned to one core of ``cores`` (by worker number)."""
    import multiprocessing

    import torch

    torch.set_num_threads(threads)
    number = (multiprocessing.current_process()._identity or (1,))[0] - 1
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cores[number % len(cores)]})


def parallel(args, fn, tasks: list[tuple], on_done=None) -> list:
    """``fn(args, *task)`` for every task, in ``args.workers`` processes (in this one when 1); results in task order.
    ``on_done(index, result)`` is called as each task finishes."""
    if args.workers <= 1:
        results = []
        for i, task in enumerate(tasks):
            results.append(fn(args, *task))
            if on_done:
                on_done(i, results[-1])
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    threads = max(1, len(cores) // args.workers) if cores else 1
    results = [None] * len(tasks)
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads, cores if threads == 1 else [])) as pool:
        futures = {pool.submit(fn, args, *task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_done:
                on_done(i, results[i])
    return results
