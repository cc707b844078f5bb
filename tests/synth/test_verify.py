"""Verification by execution end to end: mined tests run in the real bubblewrap sandbox, pairs kept or dropped."""

import json

import pytest

from llmfoundry_lite.cli.synthesize import main
from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.sandbox import Sandbox, SandboxConfig, SandboxUnavailable
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.pipeline import run_synthesis
from tests.conftest import FAST

# One function per outcome; bodies differ enough that near-dedup keeps each of them.
MODULE = '''\
import math
from collections import Counter


def running_total(values):
    """Prefix sums.

    >>> running_total([1, 2, 3])
    [1, 3, 6]
    """
    out, acc = [], 0
    for v in values:
        acc += v
        out.append(acc)
    return out


def letter_counts(word):
    """Counts of each letter, most common first (the expected output is wrong).

    >>> letter_counts("aab")
    [('b', 2), ('a', 1)]
    """
    counts = Counter(word.lower())
    return counts.most_common()


def spin_forever(seed):
    """Never returns.

    >>> spin_forever(3)
    3
    """
    state = seed
    while state or not state:
        state = (state * 7 + 1) % 11
    return state


def hypotenuse(a, b):
    """Length of the long side of a right triangle."""
    squared = a * a + b * b
    return math.sqrt(squared)


def test_hypotenuse():
    assert hypotenuse(3, 4) == 5.0
    assert round(hypotenuse(1, 1), 3) == 1.414


def clamp_all(items, low):
    """Raise every item to at least ``low``."""
    result = [max(item, low) for item in items]
    return tuple(result)
'''
UNRUNNABLE = '''\
import numpy as np


def mean_abs(xs):
    """Mean absolute value (needs numpy, which the sandbox lacks: running it would fail).

    >>> mean_abs([-1, 1])
    1.0
    """
    arr = np.abs(np.asarray(xs))
    return float(arr.mean())


def pid_is_negative(offset):
    """Imports os in its doctest (unsafe: never run; it would fail if it ran).

    >>> import os
    >>> pid_is_negative(os.getpid())
    True
    """
    shifted = offset + 1
    return shifted < 0
'''
OUTCOMES = {"running_total": "verified", "letter_counts": "failed_tests", "spin_forever": "tests_timed_out",
            "hypotenuse": "verified", "clamp_all": "untested", "mean_abs": "untested", "pid_is_negative": "untested"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "docs.jsonl"
    rows = [{"id": "m", "repository_name": "octo/m", "path": "m.py", "content": MODULE},
            {"id": "u", "repository_name": "octo/u", "path": "u.py", "content": UNRUNNABLE}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.parent


def _cfg(corpus, out, **kw) -> SynthConfig:
    return SynthConfig(input=[str(corpus)], output=str(out), heldout_fraction=0.0, **{"sandbox": FAST, **kw})


@pytest.fixture(scope="module")
def verified_run(corpus, tmp_path_factory):
    """One run with 2 workers and the report, recording every program the sandbox was given."""
    ran: list[str] = []
    real_run = Sandbox.run

    def recording_run(self, program):
        ran.append(program)
        return real_run(self, program)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Sandbox, "run", recording_run)
        out = tmp_path_factory.mktemp("out")
        stats = run_synthesis(_cfg(corpus, out, workers=2))
    return stats, out, ran


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "instruct.jsonl").read_text().splitlines()]


def test_each_function_gets_its_outcome(verified_run):
    stats, out, _ = verified_run
    rows = {r["source_id"].split("#")[1].split(":")[0]: r for r in _rows(out)}
    assert {name: row["origin"] for name, row in rows.items()} == \
        {name: origin for name, origin in OUTCOMES.items() if origin in ("verified", "untested")}
    dropped = {k: v for k, v in stats["dropped_by_reason"].items() if v}
    assert dropped == {"failed_tests": 1, "tests_timed_out": 1}
    assert stats["kept"] + sum(stats["dropped_by_reason"].values()) == stats["seen"] == len(OUTCOMES)
    assert stats["origins"] == {"untested": 3, "verified": 2}
    assert rows["hypotenuse"]["tests"] == ["assert hypotenuse(3, 4) == 5.0\n",
                                           "assert round(hypotenuse(1, 1), 3) == 1.414\n"]
    assert len(rows["running_total"]["tests"]) == 1 and "DocTestRunner" in rows["running_total"]["tests"][0]
    assert rows["clamp_all"]["tests"] == [] and len(rows["mean_abs"]["tests"]) == 1


def test_verify_stats_say_what_ran(verified_run):
    stats, _, _ = verified_run
    v = stats["verify"]
    assert (v["pairs"], v["pairs_with_tests"], v["tests"], v["executed"], v["passed"]) == (7, 6, 7, 4, 2)
    assert v["tests_by_kind"] == {"assert": 2, "doctest": 5}
    assert v["tests_per_pair"] == {"mean_of_pairs_with_tests": round(7 / 6, 3), "histogram": {"0": 1, "1": 5, "2": 1}}
    assert {k: n for k, n in v["untested_by_reason"].items() if n} == \
        {"no_tests": 1, "non_stdlib_import": 1, "unsafe_import": 1}
    assert v["share_verified"] == round(2 / 5, 4) and v["sandbox"].startswith("sandbox bwrap:")
    assert [f["source_id"].split("#")[1] for f in v["failures"]] == ["letter_counts:18", "spin_forever:28"]
    assert v["failures"][0]["result"] == "failed: 1 of 1 doctest examples of letter_counts failed"
    assert v["failures"][1]["result"] == "timed out"
    assert stats["seconds"]["verify"] > 0


def test_unrunnable_functions_never_reach_the_sandbox(verified_run):
    _, _, ran = verified_run
    programs = [p for p in ran if p]  # the sandbox's own probe runs an empty program
    assert len(programs) == 4
    assert not any("numpy" in p or "getpid" in p for p in programs)
    assert all(p.startswith("from __future__ import annotations\n") for p in programs)


def test_output_does_not_depend_on_workers(verified_run, corpus, tmp_path):
    _, out, _ = verified_run
    run_synthesis(_cfg(corpus, tmp_path, workers=1, report=False))
    assert (tmp_path / "instruct.jsonl").read_bytes() == (out / "instruct.jsonl").read_bytes()


def test_report_pngs_are_drawn(verified_run):
    stats, out, _ = verified_run
    assert stats["report"] == ["report/dropped.png", "report/languages.png", "report/lengths.png",
                               "report/tests.png"]
    for name in stats["report"]:
        assert (out / name).read_bytes().startswith(b"\x89PNG") and (out / name).stat().st_size > 5000


def test_keep_untested_false_drops_them_with_a_reason(corpus, tmp_path):
    stats = run_synthesis(_cfg(corpus, tmp_path, keep_untested=False, report=False,
                               sandbox=SandboxConfig(timeout=0.5, startup_allowance=0.5)))
    assert stats["origins"] == {"verified": 2} and stats["dropped_by_reason"]["untested"] == 3
    assert stats["kept"] + sum(stats["dropped_by_reason"].values()) == stats["seen"]
    assert all(r["origin"] == "verified" and r["tests"] for r in _rows(tmp_path))


def test_missing_bwrap_stops_the_run_before_reading(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y bubblewrap"):
        run_synthesis(_cfg(corpus, tmp_path / "a"))
    with pytest.raises(SystemExit) as exc:
        main(["--input", str(corpus), "--output", str(tmp_path / "b")])
    assert exc.value.code == 2 and "bubblewrap (bwrap) is not installed" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_sandbox_and_workers_options_are_typed():
    cfg = load_config(SynthConfig, overrides=["sandbox.timeout=0.5", "workers=3", "keep_untested=false"],
                      flags={"input": ["x"]})
    assert (cfg.sandbox.timeout, cfg.workers, cfg.keep_untested) == (0.5, 3, False)
    with pytest.raises(ConfigError, match="timout"):
        load_config(SynthConfig, overrides=["sandbox.timout=1"], flags={"input": ["x"]})
    with pytest.raises(ConfigError, match="workers must be positive"):
        load_config(SynthConfig, overrides=["workers=0"], flags={"input": ["x"]})
    with pytest.raises(ConfigError, match="sandbox.kind"):
        load_config(SynthConfig, overrides=["sandbox.kind=docker"], flags={"input": ["x"]})


def test_finished_programs_are_reused_by_the_next_attempt(verified_run, corpus):
    stats, out, ran = verified_run
    executed = stats["verify"]["executed"]
    programs = [p for p in ran if p]  # "" is the sandbox's start-up probe
    assert stats["verify"]["reused"] == 0 and len(programs) == executed > 0
    before = (out / "instruct.jsonl").read_bytes()
    again: list[str] = []
    real_run = Sandbox.run
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Sandbox, "run", lambda self, program: (program and again.append(program)) or real_run(self, program))
        second = run_synthesis(_cfg(corpus, out, workers=2))
        assert again == [] and second["verify"]["reused"] == executed
        assert (out / "instruct.jsonl").read_bytes() == before and second["dropped_by_reason"] == stats["dropped_by_reason"]
        # other limits are another way to run: nothing is reused, and the old results are pruned
        third = run_synthesis(_cfg(corpus, out, workers=2, sandbox=SandboxConfig(**{**FAST.__dict__, "timeout": FAST.timeout + 1})))
    assert third["verify"]["reused"] == 0 and len(again) == executed
    assert len(list((out / "work" / "verify").glob("*.pkl"))) == len(chunks_of(again))  # no stale chunk, no .tmp


def chunks_of(programs):
    import hashlib

    from llmfoundry_lite.synth.verify_cache import chunks

    return chunks([hashlib.sha256(p.encode()).digest() for p in programs])


def test_chunk_boundaries_follow_content_not_position():
    import hashlib

    from llmfoundry_lite.synth.verify_cache import chunks

    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(2000)]
    spans = chunks(digests)
    assert [i for s in spans for i in s] == list(range(2000)) and 15 <= len(spans) <= 60
    before = {tuple(digests[i] for i in s) for s in spans}
    edited = digests[:700] + [hashlib.sha256(b"new").digest()] + digests[700:]  # one pair added
    after = {tuple(edited[i] for i in s) for s in chunks(edited)}
    assert len(before - after) == 1 and len(after - before) == 1  # only the chunk holding it changed


def test_prune_tells_runs_apart_however_close_together(tmp_path):
    import sys

    from llmfoundry_lite.sandbox import ExecResult
    from llmfoundry_lite.synth.verify_cache import prune, run_cached, start_run

    class Recorder:  # a sandbox that passes everything and records what it ran
        python = sys.executable

        def __init__(self):
            self.ran = []

        def describe(self):
            return "recorder"

        def run(self, program):
            self.ran.append(program)
            return ExecResult(True, "passed", "", 0, 0.0)

    cache, sb = tmp_path / "verify", Recorder()
    start_run(cache)
    run_cached([f"a{i}" for i in range(300)], sb, 2, cache)
    (cache / "x.pkl.tmp99").write_bytes(b"partial")  # what a SIGKILLed attempt leaves
    first = set(cache.glob("*.pkl"))
    start_run(cache)  # the next run, within the same millisecond or so
    results, reused = run_cached([f"a{i}" for i in range(150)] + [f"b{i}" for i in range(50)], sb, 2, cache)
    assert all(r.passed for r in results) and 0 < reused < 150
    kept = set(cache.glob("*.pkl"))
    assert prune(cache) > 0 and set(cache.glob("*.pkl")) < kept and not list(cache.glob("*.tmp*"))
    left = set(cache.glob("*.pkl"))
    assert left & first and left - first  # reused chunks stay, new ones stay, the rest went
    sb.ran.clear()
    start_run(cache)
    assert run_cached([f"a{i}" for i in range(150)] + [f"b{i}" for i in range(50)], sb, 2, cache)[1] == 200
    assert sb.ran == [] and prune(cache) == 0
