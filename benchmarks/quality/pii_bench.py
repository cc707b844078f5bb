"""Throughput of the PII scrub next to detect-secrets run the way BigCode ran it, on the same files.

    python benchmarks/quality/pii_bench.py [--corpus data/local_stack] [--docs 2000] [--peer-docs 300]

Both sides are timed with ``time.process_time`` in this one process, so the figures are per core
and the ratio holds on a busy machine. The peer writes each document to a temporary file and calls
``detect_secrets.core.scan.scan_file`` (keys only); it is timed on the first ``--peer-docs`` of the
same sample because it is slow.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a file: see benchmarks/__init__.py

from llmfoundry_lite.filtering.pii.config import PIIConfig


@dataclass
class Rate:
    """Documents and bytes processed per CPU second."""

    name: str
    docs: int
    mbytes: float
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.mbytes / self.seconds

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds


def load_sample(corpus: Path, n_docs: int, seed: int = 0) -> list[str]:
    """A seeded sample of ``n_docs`` document texts from the Stack-format Parquet shards in ``corpus``."""
    import pyarrow.parquet as pq

    shards = sorted(corpus.glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no *.parquet shards in {corpus}; build the corpus with `make demo` first")
    texts: list[str] = []
    for shard in shards:
        texts.extend(pq.read_table(shard, columns=["content"]).column("content").to_pylist())
    random.Random(seed).shuffle(texts)
    return texts[:n_docs]


def measure(name: str, texts: list[str], fn: Callable[[str], object]) -> Rate:
    """CPU time of ``fn`` over ``texts`` (one warm-up call first, not timed)."""
    fn(texts[0])
    start = time.process_time()
    for text in texts:
        fn(text)
    seconds = max(time.process_time() - start, 1e-9)
    return Rate(name, len(texts), sum(len(t.encode("utf-8")) for t in texts) / 1e6, seconds)


def run(texts: list[str], peer_docs: int, cfg: PIIConfig) -> list[Rate]:
    """Rates of the whole scrub, each detector alone, and the detect-secrets peer."""
    from benchmarks.quality.pii_baseline import baseline_settings, scan_with_tempfile
    from llmfoundry_lite.filtering.pii.emails import find_emails
    from llmfoundry_lite.filtering.pii.ips import find_ips
    from llmfoundry_lite.filtering.pii.keys import find_keys
    from llmfoundry_lite.filtering.pii.scrub import scrub_pii

    rates = [
        measure("scrub_pii (emails + IPs + keys)", texts, lambda t: scrub_pii(t, cfg)),
        measure("  emails only", texts, lambda t: find_emails(t, cfg)),
        measure("  IP addresses only", texts, lambda t: find_ips(t, cfg)),
        measure("  keys only", texts, lambda t: find_keys(t, cfg)),
    ]
    with baseline_settings():
        rates.append(measure("detect-secrets, temp file per doc (keys)", texts[:peer_docs], scan_with_tempfile))
    return rates


def format_rates(rates: list[Rate]) -> str:
    """Table of per-core rates with each row's speed relative to the last row (the peer)."""
    peer = rates[-1]
    lines = [f"{'stage':<44}{'docs':>6}{'MB':>8}{'MB/s/core':>11}{'docs/s/core':>13}{'vs peer':>9}"]
    for r in rates:
        lines.append(
            f"{r.name:<44}{r.docs:>6}{r.mbytes:>8.2f}{r.mb_per_s:>11.2f}{r.docs_per_s:>13.0f}"
            f"{r.mb_per_s / peer.mb_per_s:>8.1f}x"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/local_stack", help="folder of Stack-format Parquet shards")
    parser.add_argument("--docs", type=int, default=2000, help="documents in the sample")
    parser.add_argument("--peer-docs", type=int, default=300, help="documents the slow peer is timed on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    texts = load_sample(Path(args.corpus), args.docs, args.seed)
    print(format_rates(run(texts, min(args.peer_docs, len(texts)), PIIConfig())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
