"""Local executor: a process pool over input shards, with a live progress bar.

Each task is one shard (pass 1 or pass 3); results come back in task order, so nothing the
engine produces depends on the worker count. Workers report progress through a queue as
``(shard, docs since last report, candidates so far, rejected so far)``; the bar shows docs/s
with the running kept/rejected totals. Memory per worker is one write batch plus one
document; the parent holds only counts. Near dedup uses datasketch's in-memory LSH.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from llmfoundry_lite.filtering.dedup_pass import local_dedup

_QUEUE: Any = None


def _init_worker(q: Any) -> None:
    global _QUEUE
    _QUEUE = q


def _put(shard: int, docs: int, candidates: int, rejected: int) -> None:
    _QUEUE.put((shard, docs, candidates, rejected))


def _call(fn: Callable, args: tuple, with_tick: bool) -> Any:
    if with_tick:
        return fn(*args, tick=partial(_put, args[0]))
    return fn(*args)


class Progress:
    """A tqdm bar fed by ``(shard, docs, candidates, rejected)`` reports."""

    def __init__(self, desc: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=desc, unit="doc", disable=not enabled, dynamic_ncols=True)
        self.totals: dict[int, tuple[int, int]] = {}

    def __call__(self, shard: int, docs: int, candidates: int, rejected: int) -> None:
        self.totals[shard] = (candidates, rejected)
        self.bar.update(docs)
        self.bar.set_postfix(kept=sum(c for c, _ in self.totals.values()),
                             rejected=sum(r for _, r in self.totals.values()), refresh=False)

    def close(self) -> None:
        self.bar.close()


class LocalEngine:
    """Runs shard tasks in ``workers`` processes (inline when one suffices); one pool serves all passes."""

    dedup = staticmethod(local_dedup)

    def __init__(self, workers: int, progress: bool) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self.pool: Any = None
        self.queue: Any = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)  # after a crash, do not start queued shards

    def map(self, fn: Callable, tasks: list[tuple], desc: str, tick: bool = False) -> list:
        """``[fn(*task) for task in tasks]`` in parallel; ``tick`` wires the progress bar."""
        bar = Progress(desc, self.progress and tick)
        try:
            if min(self.workers, len(tasks)) <= 1:
                return [fn(*t, tick=partial(bar, t[0])) if tick else fn(*t) for t in tasks]
            return self._pool_map(fn, tasks, bar, tick)
        finally:
            bar.close()

    def _pool_map(self, fn: Callable, tasks: list[tuple], bar: Progress, tick: bool) -> list:
        if self.pool is None:
            # spawn, not fork: the parent has pyarrow's thread pools running after pass 2. A
            # ProcessPoolExecutor (unlike mp.Pool) fails loudly when a worker dies, e.g. OOM-killed.
            ctx = mp.get_context("spawn")
            self.queue = ctx.Queue()
            self.pool = ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=ctx,
                                            initializer=_init_worker, initargs=(self.queue,))
        pending = [self.pool.submit(_call, fn, t, tick) for t in tasks]
        while not all(p.done() for p in pending):
            try:
                bar(*self.queue.get(timeout=0.2))
            except queue_mod.Empty:
                continue
        while not self.queue.empty():
            bar(*self.queue.get())
        return [p.result() for p in pending]
