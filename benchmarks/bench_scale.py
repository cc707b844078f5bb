"""How the filter stage grows with the corpus: the local engine vs Spark on a standalone cluster, 1x–16x.

Builds synthetic Stack-like corpora (Parquet files of 10,000 rows with The Stack's column names;
each document a Python module of 40–120 lines drawn from a fixed vocabulary of identifiers), with
a realistic share of duplicates: 8% exact copies (re-indented), 12% near copies (an earlier
document with ~5% of its lines rewritten) — both across files — and 3% variants of one boilerplate
file that differ in a single literal (vendored ``setup.py``/``__init__`` copies): they share every
LSH band, so one bucket holds 3% of the corpus (375 documents at 1x, 6,000 at 16x), the hot bucket a
quadratic pairing would choke on. Each run is a fresh interpreter (``python -c run_filter``) whose
own peak RSS is the driver's Python; a sampler polls its process tree every 0.1 s for the largest
Python worker (pool workers locally) and the JVM. Spark runs on a standalone cluster on loopback
(``tests/spark_cluster.py``: a master and two worker JVMs, executors in their own processes), so the
JVM in the driver's tree is the driver's alone. Filters: autogen, line heuristics, exact + near dedup;
PII, parse and decontamination are switched off so the per-document cost is small and the stage's
scaling (dedup, I/O, what the driver holds) dominates the fit. The last lines fit ``time ∝ docs^k``
and ``driver memory ∝ docs^k`` (Python + JVM for Spark) by least squares on log-log.

    .venv/bin/python benchmarks/bench_scale.py [--base 12500] [--scales 1 4 16] [--out runs/bench/scale]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: its test cluster
from tests.spark_cluster import SparkCluster  # noqa: E402

ROWS_PER_FILE = 10_000
WORDS = [f"{a}{b}" for a in ("get", "set", "load", "save", "parse", "emit", "scan", "fold", "map", "sum", "read",
                              "send", "pack", "sort", "find", "make", "drop", "join", "push", "pull")
         for b in ("_item", "_node", "_row", "_key", "_page", "_user", "_path", "_size", "_rate", "_step",
                   "_name", "_list", "_tree", "_file", "_task", "_byte", "_word", "_line", "_cell", "_port")]
RUN = """
import json, resource, sys, time
from llmfoundry_lite.config import load_config
from llmfoundry_lite.filtering.config import FilterConfig
from llmfoundry_lite.filtering.pipeline import run_filter
flags = json.loads(sys.argv[1])
cfg = load_config(FilterConfig, None, sys.argv[2:], flags=flags)
t = time.perf_counter()
stats = run_filter(cfg, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "kept": stats["kept"], "seen": stats["seen"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
OVERRIDES = ["pii.enabled=false", "parse.enabled=false", "decontam.enabled=false", "report=false"]


def _module(rng: random.Random) -> list[str]:
    lines = [f"import {rng.choice(WORDS)}\n", "\n"]
    for _ in range(rng.randint(8, 24)):
        name, arg = rng.choice(WORDS), rng.choice(WORDS)
        lines += [f"def {name}_{rng.randrange(10**6)}({arg}, limit={rng.randrange(100)}):\n",
                  f"    total = {rng.choice(WORDS)}({arg}) + {rng.randrange(1000)}\n",
                  f"    return {rng.choice(WORDS)}(total, {arg}.{rng.choice(WORDS)})\n", "\n"]
    return lines


def _boilerplate(i: int) -> list[str]:
    """One vendored file in many copies, each with its own version string: near-identical, one hot LSH bucket."""
    lines = ["from setuptools import setup, find_packages\n", "\n", f"VERSION = \"1.{i}.0\"\n", "\n"]
    lines += [f"def {w}(config, limit=10):\n    return config.get({w!r}, limit)\n\n" for w in WORDS[:24]]
    lines += ["setup(name=\"vendored\", version=VERSION, packages=find_packages(), zip_safe=False)\n"]
    return lines


def build_corpus(out: Path, docs: int, seed: int = 0) -> None:
    """``docs`` Stack-format rows in ``out/part-NNNNN.parquet``: 77% unique, 8% exact and 12% near copies,
    3% variants of one boilerplate file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    pool: list[list[str]] = []  # a bounded pool of earlier documents to copy from
    rows: list[dict] = []
    for i in range(docs):
        r = rng.random()
        if pool and r < 0.08:
            lines = ["\t" + ln.lstrip(" ") if ln.startswith("    ") else ln for ln in rng.choice(pool)]
        elif pool and r < 0.20:
            lines = list(rng.choice(pool))
            for k in rng.sample(range(len(lines)), max(1, len(lines) // 20)):
                lines[k] = f"    return {rng.choice(WORDS)}({rng.randrange(1000)})\n"
        elif r < 0.23:
            lines = _boilerplate(i)
        else:
            lines = _module(rng)
            pool.append(lines) if len(pool) < 5000 else pool.__setitem__(rng.randrange(5000), lines)
        content = "".join(lines)
        rows.append({"hexsha": f"{i:040x}", "content": content, "size": len(content), "ext": "py", "lang": "Python",
                     "max_stars_repo_path": f"pkg/mod_{i}.py", "max_stars_repo_name": f"org/repo{i % 997}",
                     "max_stars_repo_licenses": ["MIT"], "max_stars_count": i % 50})
        if len(rows) == ROWS_PER_FILE or i == docs - 1:
            pq.write_table(pa.Table.from_pylist(rows), out / f"part-{i // ROWS_PER_FILE:05d}.parquet")
            rows = []


class Sampler(threading.Thread):
    """Peak RSS (MB) of the largest Python child and of any Java child of ``pid``, polled every 0.1 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.worker_mb = self.jvm_mb = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for child in self.proc.children(recursive=True):
                    mb = child.memory_info().rss / 2**20
                    if "java" in child.name():
                        self.jvm_mb = max(self.jvm_mb, mb)
                    elif "python" in child.name():
                        self.worker_mb = max(self.worker_mb, mb)
            except psutil.Error:
                pass
            time.sleep(0.1)


def run_engine(corpus: Path, out: Path, engine: str, spark_conf: dict[str, str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    flags = {"input": [str(corpus)], "output": str(out.resolve()), "engine": engine, "workers": 2}
    # What a user passes with spark-submit: the cluster, and shuffle partitions sized for two cores, not 200.
    conf = {**spark_conf, "spark.sql.shuffle.partitions": "8"} if engine == "spark" else {}
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,  # the executors' interpreter: this venv
           "PYSPARK_SUBMIT_ARGS": " ".join(f"--conf {k}={v}" for k, v in conf.items()) + " pyspark-shell"}
    proc = subprocess.Popen([sys.executable, "-c", RUN, json.dumps(flags), *OVERRIDES],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    sampler = Sampler(proc.pid)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.stop.set()
    if proc.returncode != 0:
        raise SystemExit(f"{engine} filter failed on {corpus} (exit {proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "worker_mb": sampler.worker_mb, "jvm_mb": sampler.jvm_mb}


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=12_500, help="documents at 1x")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--out", default="runs/bench/scale")
    args = parser.parse_args()
    root = Path(args.out).resolve()
    results: dict[str, list[dict]] = {"local": [], "spark": []}
    print(f"{'scale':>5}{'docs':>9}{'engine':>8}{'kept':>9}{'wall s':>9}{'docs/s':>9}{'driver MB':>11}"
          f"{'worker MB':>11}{'JVM MB':>9}", flush=True)
    with SparkCluster(root / "cluster", worker_cores=1, worker_memory="2g", executor_memory="1536m") as cluster:
        spark_conf = cluster.conf()
        for scale in args.scales:
            docs = args.base * scale
            corpus = root / f"corpus-{scale}x"
            done = corpus.with_name(corpus.name + ".done")  # beside it: a file inside would make it a source tree
            if not done.exists():
                shutil.rmtree(corpus, ignore_errors=True)
                build_corpus(corpus, docs)
                done.touch()
            for engine in results:
                r = run_engine(corpus, root / f"out-{scale}x-{engine}", engine, spark_conf)
                results[engine].append({"docs": docs, **r})
                print(f"{scale:>4}x{docs:>9,}{engine:>8}{r['kept']:>9,}{r['seconds']:>9.1f}"
                      f"{docs / r['seconds']:>9.0f}{r['rss_mb']:>11.0f}{r['worker_mb']:>11.0f}{r['jvm_mb']:>9.0f}",
                      flush=True)
    kept = {e: [r["kept"] for r in rs] for e, rs in results.items()}
    if kept["local"] != kept["spark"]:
        raise SystemExit(f"engines disagree on the kept counts: {kept}")
    xs = [r["docs"] for r in results["local"]]
    t = {e: exponent(xs, [r["seconds"] for r in rs]) for e, rs in results.items()}
    m = {e: exponent(xs, [r["rss_mb"] + r["jvm_mb"] for r in rs]) for e, rs in results.items()}
    jvm = exponent(xs, [r["jvm_mb"] for r in results["spark"]])
    (root / "results.json").write_text(json.dumps(results, indent=1))
    print(f"scale: time exponent local {t['local']:.2f} spark {t['spark']:.2f} (target <= 1.1)")
    print(f"scale: driver memory exponent (Python + JVM) local {m['local']:.2f} spark {m['spark']:.2f} "
          f"(target <= 0.2; the Spark driver's JVM alone {jvm:.2f})")


if __name__ == "__main__":
    main()
