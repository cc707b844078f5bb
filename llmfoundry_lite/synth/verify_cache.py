"""Finished verification work kept across attempts: programs' results stored in content-defined chunks.

Each program is named by a digest of its text and of how it runs (the sandbox's description: kind,
interpreter, user, limits; and the interpreter file's size and mtime). A chunk ends after each
program whose digest is 0 modulo ``CHUNK_SPAN``, so boundaries depend on the programs alone, not on
their positions: adding, removing or changing a pair touches only its own chunk. A chunk's results are
written, atomically, to ``<dir>/<digest of its programs>.pkl`` as soon as its last program finishes,
so a rerun after a SIGKILL or with changed inputs runs only the programs of chunks not yet stored.
Files this run neither read nor wrote are deleted at its end (``prune``). A run starts by stamping
``<dir>/run.stamp`` with the current time (``start_run``), and every chunk it reads or writes gets
exactly that modification time; so ``prune`` needs no list from the Spark executors and no slack for
clocks: a chunk older than the stamp belongs to an earlier run. (On a filesystem that keeps whole
seconds, a run less than a second after the last one keeps that run's chunks too; nothing is lost.)
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from llmfoundry_lite.sandbox import ExecResult, Sandbox
from llmfoundry_lite.spark_session import attempt_tmp

CHUNK_SPAN = 64
"""Programs per stored chunk, on average."""
STAMP = "run.stamp"
"""The file whose modification time names the current run."""


def start_run(cache: Path) -> int:
    """Stamp ``cache`` for a new run; returns the stamp as the filesystem stores it (ns)."""
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / STAMP
    stamp.touch()
    now = time.time_ns()
    os.utime(stamp, ns=(now, now))
    return stamp.stat().st_mtime_ns


def _run_stamp(cache: Path) -> int:
    try:
        return (cache / STAMP).stat().st_mtime_ns
    except FileNotFoundError:  # called outside a run (start_run not called): this call is the run
        return start_run(cache)


def _mark(path: Path, stamp: int) -> None:
    os.utime(path, ns=(stamp, stamp))  # used by this run: kept by prune


def _salt(sandbox: Sandbox) -> bytes:
    stat = os.stat(sandbox.python)
    return f"{sandbox.describe()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode()


def chunks(digests: Sequence[bytes]) -> list[range]:
    """Index ranges of the content-defined chunks of ``digests``."""
    out, start = [], 0
    for i, d in enumerate(digests):
        if int.from_bytes(d[:4], "big") % CHUNK_SPAN == 0:
            out.append(range(start, i + 1))
            start = i + 1
    if start < len(digests):
        out.append(range(start, len(digests)))
    return out


def _load(path: Path, stamp: int) -> list[ExecResult] | None:
    try:
        results = pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, TypeError):
        return None
    _mark(path, stamp)
    return results


def _store(path: Path, results: list[ExecResult], stamp: int) -> None:
    tmp = attempt_tmp(path)  # another executor may store the same chunk at once (spark_session.py)
    tmp.write_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    _mark(tmp, stamp)
    os.replace(tmp, path)


def run_cached(programs: Sequence[str], sandbox: Sandbox, workers: int, cache: Path) -> tuple[list[ExecResult], int]:
    """Each program's result in input order, and how many came from ``cache`` instead of a sandbox."""
    salt = _salt(sandbox)
    digests = [hashlib.sha256(salt + p.encode("utf-8", "surrogatepass")).digest() for p in programs]
    stamp = _run_stamp(cache)
    results: list[ExecResult | None] = [None] * len(programs)
    pending: dict[int, tuple[range, Path]] = {}
    for n, span in enumerate(chunks(digests)):
        path = cache / (hashlib.sha256(b"".join(digests[i] for i in span)).hexdigest()[:32] + ".pkl")
        stored = _load(path, stamp)
        if stored is not None and len(stored) == len(span):
            results[span.start:span.stop] = stored
        else:
            pending[n] = (span, path)
    reused = len(programs) - sum(len(span) for span, _ in pending.values())
    if pending:
        left = {n: len(span) for n, (span, _) in pending.items()}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(sandbox.run, programs[i]): (n, i) for n, (span, _) in pending.items() for i in span}
            for future in as_completed(futures):
                n, i = futures[future]
                results[i] = future.result()
                left[n] -= 1
                if not left[n]:
                    span, path = pending[n]
                    _store(path, results[span.start:span.stop], stamp)  # type: ignore[arg-type]
    return results, reused  # type: ignore[return-value]


def prune(cache: Path) -> int:
    """Delete the files the current run (``start_run``) neither read nor wrote; returns how many."""
    try:
        stamp = (cache / STAMP).stat().st_mtime_ns
    except FileNotFoundError:
        return 0  # no run here: nothing to tell old from new
    removed = 0
    with os.scandir(cache) as entries:
        for entry in entries:  # chunks, and partial .tmp files a killed attempt left
            if entry.name != STAMP and entry.stat().st_mtime_ns < stamp:
                os.unlink(entry.path)
                removed += 1
    return removed
