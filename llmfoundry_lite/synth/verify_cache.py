"""Finished verification work kept across attempts: programs' results stored in content-defined chunks.

Each program is named by a digest of its text and of how it runs (the sandbox's description: kind,
interpreter, user, limits; and the interpreter file's size and mtime). A chunk ends after each
program whose digest is 0 modulo ``CHUNK_SPAN``, so boundaries depend on the programs alone, not on
their positions: adding, removing or changing a pair touches only its own chunk. A chunk's results are
written, atomically, to ``<dir>/<digest of its programs>.pkl`` as soon as its last program finishes,
so a rerun after a SIGKILL or with changed inputs runs only the programs of chunks not yet stored.
Files this run neither read nor wrote are deleted at its end (``prune``, by modification time, so a
Spark run's executors and driver need not share a list).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from llmfoundry_lite.eval.sandbox import ExecResult, Sandbox

CHUNK_SPAN = 64
"""Programs per stored chunk, on average."""


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


def _load(path: Path) -> list[ExecResult] | None:
    try:
        results = pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, TypeError):
        return None
    os.utime(path)  # used by this run: kept by prune
    return results


def _store(path: Path, results: list[ExecResult]) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)


def run_cached(programs: Sequence[str], sandbox: Sandbox, workers: int, cache: Path) -> tuple[list[ExecResult], int]:
    """Each program's result in input order, and how many came from ``cache`` instead of a sandbox."""
    salt = _salt(sandbox)
    digests = [hashlib.sha256(salt + p.encode("utf-8", "surrogatepass")).digest() for p in programs]
    cache.mkdir(parents=True, exist_ok=True)
    results: list[ExecResult | None] = [None] * len(programs)
    pending: dict[int, tuple[range, Path]] = {}
    for n, span in enumerate(chunks(digests)):
        path = cache / (hashlib.sha256(b"".join(digests[i] for i in span)).hexdigest()[:32] + ".pkl")
        stored = _load(path)
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
                    _store(path, results[span.start:span.stop])  # type: ignore[arg-type]
    return results, reused  # type: ignore[return-value]


def prune(cache: Path, since: float) -> int:
    """Delete the chunk files not read or written since ``since`` (a ``time.time()``); returns how many."""
    removed = 0
    if not cache.is_dir():
        return 0
    with os.scandir(cache) as entries:
        for entry in entries:
            if entry.stat().st_mtime < since - 1:  # 1 s of slack for coarse filesystem clocks
                os.unlink(entry.path)
                removed += 1
    return removed
