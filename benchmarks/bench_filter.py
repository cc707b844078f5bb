"""Throughput of the whole filter stage vs detect-secrets used BigCode's way, on the same files.

Takes a seeded, uniform sample of the local corpus, runs ``run_filter`` on it with one
worker (inline, so this process's CPU time is the stage's) after a small warm-up run that
pays the one-time imports, and prints MB/s and docs/s per core — CPU time is used for "per
core" because the machine's cores are shared. A per-
component breakdown follows. The peer is detect-secrets as bigcode-dataset/pii calls it:
every document written to a temporary file and scanned with ``SecretsCollection.scan_file``
under transient settings (their plugin set: all but Keyword/BasicAuth/PrivateKey, with the
UUID/templated/sequential/ID-string filters) — measured in the same run on a subset of the
same sample. The peer only looks for keys; our stage also filters, parses, dedups and
redacts emails and IPs.

Benchmark decontamination is measured as the whole stage with it switched off vs on
(``decontam.enabled=false`` vs the default), ``--rounds`` times each, alternating which goes
first; the best round of each is compared against the goal of at most 20% slowdown (the
machine is shared: the best round is the least disturbed one). The "on" rounds are the
default configuration and give the headline numbers.

    .venv/bin/python benchmarks/bench_filter.py [--input data/local_stack] [--sample-bytes 8000000] [--peer-docs 300]
                                             [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from llmfoundry_lite.corpus.readers import iter_documents, list_input_shards
from llmfoundry_lite.filtering.config import DecontamConfig, FilterConfig

PEER_EXCLUDED = {"KeywordDetector", "BasicAuthDetector", "PrivateKeyDetector"}
PEER_FILTERS = ["detect_secrets.filters.heuristic.is_potential_uuid",
                "detect_secrets.filters.heuristic.is_likely_id_string",
                "detect_secrets.filters.heuristic.is_templated_secret",
                "detect_secrets.filters.heuristic.is_sequential_string"]
TARGET_MB_S = 2.0
MAX_DECONTAM_SLOWDOWN = 1.20


def sample_docs(inputs: list[str], budget: int, seed: int = 0) -> list[dict]:
    """Documents in seeded-hash order of their id until ``budget`` bytes."""
    docs = [d for s in list_input_shards(inputs) for d in iter_documents(s, Counter())]
    docs.sort(key=lambda d: hashlib.sha256(f"{seed}\0{d['id']}".encode()).digest())
    out, total = [], 0
    for d in docs:
        if total >= budget:
            break
        out.append(d)
        total += d["size"]
    return out


def run_stage(docs: list[dict], tmp: Path, decontam: bool = True) -> tuple[float, float, dict]:
    """CPU and wall seconds of ``run_filter`` (one inline worker) over ``docs``; and its stats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmfoundry_lite.filtering.pipeline import run_filter

    pq.write_table(pa.Table.from_pylist(docs), tmp / "sample.parquet")
    cfg = FilterConfig(input=[str(tmp / "sample.parquet")], output=str(tmp / "out"), workers=1, report=False,
                       decontam=DecontamConfig(enabled=decontam))
    cpu, wall = time.process_time(), time.perf_counter()
    stats = run_filter(cfg, progress=False)
    return time.process_time() - cpu, time.perf_counter() - wall, stats


def component_seconds(docs: list[dict]) -> dict[str, float]:
    """CPU seconds of each per-document component over all of ``docs`` (no short-circuit)."""
    from llmfoundry_lite.filtering.autogen import autogen_rule
    from llmfoundry_lite.filtering.decontam import decontaminator
    from llmfoundry_lite.filtering.dedup import content_hash, minhash_signature
    from llmfoundry_lite.filtering.documents import scrub
    from llmfoundry_lite.filtering.heuristics import line_stats
    from llmfoundry_lite.filtering.parse import parse_error

    cfg = FilterConfig()
    steps = {
        "line stats": lambda d: line_stats(d["content"]),
        "autogen rules": lambda d: autogen_rule(d, line_stats(d["content"]), cfg.autogen),
        "parse check": lambda d: parse_error(d, cfg.parse),
        "PII scrub": lambda d: scrub(d["content"], cfg),
        "exact hash": lambda d: content_hash(d["content"]),
        "MinHash": lambda d: minhash_signature(d["content"], cfg.dedup),
        "decontamination": lambda d: decontaminator(cfg.decontam).find(d["content"]),
    }
    seconds: dict[str, float] = defaultdict(float)
    for name, fn in steps.items():
        fn(docs[0])  # warm caches (parsers, permutations, plugins)
        start = time.process_time()
        for d in docs:
            fn(d)
        seconds[name] = time.process_time() - start
    return seconds


def run_peer(docs: list[dict]) -> tuple[float, int]:
    """CPU seconds of detect-secrets, one temporary file per document (BigCode's usage); findings."""
    from detect_secrets import SecretsCollection
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import transient_settings

    plugins = [{"name": c.__name__} for c in get_mapping_from_secret_type_to_class().values()
               if c.__name__ not in PEER_EXCLUDED]
    settings = {"plugins_used": plugins, "filters_used": [{"path": p} for p in PEER_FILTERS]}
    found = 0
    start = time.process_time()
    for d in docs:
        with tempfile.NamedTemporaryFile("w", suffix="." + (d["ext"] or "txt"), delete=False) as fh:
            fh.write(d["content"])
        secrets = SecretsCollection()
        with transient_settings(settings):
            secrets.scan_file(fh.name)
        found += sum(len(v) for v in secrets.data.values())
        os.unlink(fh.name)
    return time.process_time() - start, found


@contextlib.contextmanager
def timed_find() -> Iterator[list[float]]:
    """Add the CPU seconds and bytes of every ``Decontaminator.find`` call to the yielded ``[seconds, bytes]``.

    The off/on difference of whole-stage runs moves by the machine's noise (~10% here, shared
    cores); timing the calls inside the "on" run measures the same cost directly."""
    from llmfoundry_lite.filtering.decontam import Decontaminator

    spent = [0.0, 0]
    find = Decontaminator.find

    def timed(self: Decontaminator, text: str) -> object:
        start = time.process_time()
        try:
            return find(self, text)
        finally:
            spent[0] += time.process_time() - start
            spent[1] += len(text.encode("utf-8", "surrogatepass"))

    Decontaminator.find = timed
    try:
        yield spent
    finally:
        Decontaminator.find = find


def decontam_rounds(docs: list[dict], rounds: int) -> tuple[dict[bool, tuple[float, float, dict]], list[float]]:
    """Best (least CPU) ``run_stage`` result with decontamination off (False) and on (True, the default),
    and ``[seconds, bytes]`` of ``find`` in that best "on" run."""
    best: dict[bool, tuple[float, float, dict]] = {}
    find_cost: list[float] = []
    for r in range(rounds):
        for enabled in (False, True) if r % 2 == 0 else (True, False):
            with tempfile.TemporaryDirectory() as tmp, timed_find() as spent:
                result = run_stage(docs, Path(tmp), decontam=enabled)
            if enabled not in best or result[0] < best[enabled][0]:
                best[enabled] = result
                if enabled:
                    find_cost = spent
    return best, find_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", default=["data/local_stack"])
    parser.add_argument("--sample-bytes", type=int, default=8_000_000)
    parser.add_argument("--peer-docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="runs of the stage with decontamination off and on")
    args = parser.parse_args()
    docs = sample_docs(args.input, args.sample_bytes)
    mb = sum(d["size"] for d in docs) / 1e6
    with tempfile.TemporaryDirectory() as tmp:  # one-time cost: imports, grammars, plugins, benchmark index
        cold_cpu, _, _ = run_stage(docs[:20], Path(tmp))
    best, (find_cpu, find_bytes) = decontam_rounds(docs, args.rounds)
    cpu, wall, stats = best[True]
    peer_docs = docs[: args.peer_docs]
    peer_mb = sum(d["size"] for d in peer_docs) / 1e6
    peer_cpu, peer_found = run_peer(peer_docs)
    ours = mb / cpu
    peer = peer_mb / peer_cpu
    print(f"sample: {len(docs):,} documents, {mb:.2f} MB from {', '.join(args.input)}")
    print(f"{'':44}{'MB/s/core':>10}{'docs/s/core':>13}")
    print(f"{'whole filter stage (run_filter, 1 worker)':44}{ours:>10.2f}{len(docs) / cpu:>13.1f}"
          f"   wall {mb / wall:.2f} MB/s (shared CPU), best of {args.rounds}")
    print(f"{'detect-secrets, temp file per doc (BigCode)':44}{peer:>10.2f}{len(peer_docs) / peer_cpu:>13.1f}"
          f"   on {len(peer_docs)} docs, {peer_found} findings")
    print(f"ratio whole stage / detect-secrets alone: {ours / peer:.1f}x;  target >= {TARGET_MB_S} MB/s/core: "
          f"{'met' if ours >= TARGET_MB_S else 'NOT met'}")
    off_cpu = best[False][0]
    print(f"{'  the same with decontamination off':44}{mb / off_cpu:>10.2f}{len(docs) / off_cpu:>13.1f}"
          f"   best of {args.rounds}")
    slowdown = cpu / off_cpu
    found = stats.get("decontaminated_by_benchmark", {})
    print(f"decontamination slowdown (on / off CPU time): {slowdown:.3f}x;  goal <= {MAX_DECONTAM_SLOWDOWN:.2f}: "
          f"{'met' if slowdown <= MAX_DECONTAM_SLOWDOWN else 'NOT met'};  rejected as decontaminated: "
          f"{dict(found) or 0}")
    print(f"  find() inside that 'on' run: {find_cpu:.2f} s = {find_cpu / cpu:.1%} of its CPU, "
          f"{find_bytes / 1e6 / find_cpu:.1f} MB/s/core over the {find_bytes / 1e6:.2f} MB that reached it")
    print(f"(one-time start-up, excluded above: {cold_cpu:.1f} s CPU for imports and a 20-document warm-up run)")
    print(f"kept {stats['kept']:,} / rejected {stats['rejected']:,} / skipped {stats['skipped']:,} of {stats['seen']:,}")
    print("\nper-component CPU cost over every sampled document (no short-circuit):")
    for name, seconds in component_seconds(docs).items():
        print(f"  {name:<16}{mb / seconds:>8.1f} MB/s/core")


if __name__ == "__main__":
    main()
