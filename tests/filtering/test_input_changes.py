"""No stale work is reused: inputs added, removed or replaced between attempts (and after SIGKILL)."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.corpus.identity import InputChangedError
from llmfoundry_lite.filtering.pipeline import run_filter
from tests.filtering.stack_rows import module, stack_row, write_stack


def _outputs(out):
    return {f"{sub}/{f.name}": f.read_bytes() for sub in ("kept", "rejected") for f in sorted((out / sub).glob("*.parquet"))}


def _clean(stats):
    return {k: v for k, v in stats.items() if k not in ("report", "config_hash", "inputs_key")}  # path-dependent


def _corpus(d, files):
    for name, rows in files.items():
        write_stack(d / name, rows)


A = [stack_row(f"a{i}.py", module(i)) for i in range(1, 4)]
B = [stack_row(f"b{i}.py", module(i)) for i in range(10, 16)]  # 6 rows
B8 = [stack_row(f"b{i}.py", module(i)) for i in range(20, 28)]  # 8 other rows, same file name
C = [stack_row("c1.py", module(1)), stack_row("c2.py", module(30))]  # c1 duplicates a1


@pytest.fixture
def fresh(filter_cfg, tmp_path):
    """Run a from-scratch filter over ``files`` in a new directory; its stats and output bytes."""
    def run(files, name):
        d = tmp_path / f"fresh-{name}"
        _corpus(d / "src", files)
        stats = run_filter(filter_cfg(input=[str(d / "src")], output=str(d / "out")), progress=False)
        return _clean(stats), _outputs(d / "out")
    return run


def _pass1_mtimes(out):
    return {f.name: f.stat().st_mtime_ns for f in (out / "work" / "pass1").glob("*.parquet")}


def test_add_remove_replace_between_attempts_redo_exactly_the_affected_work(filter_cfg, tmp_path, fresh):
    src, out = tmp_path / "src", tmp_path / "out"
    _corpus(src, {"a.parquet": A, "b.parquet": B})
    cfg = filter_cfg(input=[str(src)], output=str(out))
    first = run_filter(cfg, progress=False)
    assert first["seen"] == 9 and first["kept"] == 9
    before = _pass1_mtimes(out)

    _corpus(src, {"c.parquet": C})  # a download finished: one more file
    added = run_filter(cfg, progress=False)
    assert added["seen"] == 11 and added["rejected_by_reason"] == {"exact_duplicate": 1}
    after = _pass1_mtimes(out)
    assert {k: after[k] for k in before} == before and len(after) == 3  # only c.parquet's pass 1 ran
    assert (_clean(added), _outputs(out)) == fresh({"a.parquet": A, "b.parquet": B, "c.parquet": C}, "abc")

    time.sleep(0.01)
    write_stack(src / "b.parquet", B8)  # replaced in place: 8 rows now, not 6
    replaced = run_filter(cfg, progress=False)
    assert replaced["seen"] == 3 + 8 + 2 and replaced["kept"] == 12
    assert (_clean(replaced), _outputs(out)) == fresh({"a.parquet": A, "b.parquet": B8, "c.parquet": C}, "ab8c")

    (src / "a.parquet").unlink()  # removed: c1 is no longer a duplicate, part-00002 must go
    removed = run_filter(cfg, progress=False)
    assert removed["seen"] == 10 and removed["kept"] == 10 and removed["rejected"] == 0
    assert (_clean(removed), _outputs(out)) == fresh({"b.parquet": B8, "c.parquet": C}, "b8c")
    assert len(list((out / "work" / "pass1").glob("*.done"))) == 2


def test_unchanged_inputs_reuse_everything(filter_cfg, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    _corpus(src, {"a.parquet": A, "b.parquet": B})
    cfg = filter_cfg(input=[str(src)], output=str(out))
    first = run_filter(cfg, progress=False)
    stamp = (out / "stats.json").stat().st_mtime_ns
    assert run_filter(cfg, progress=False) == first and (out / "stats.json").stat().st_mtime_ns == stamp


def test_a_file_changing_between_passes_stops_the_run_naming_it(filter_cfg, tmp_path, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "out"
    _corpus(src, {"a.parquet": A, "b.parquet": B})
    from llmfoundry_lite.filtering import pipeline

    real = pipeline.global_dedup

    def grow_b(*args):
        time.sleep(0.01)
        write_stack(src / "b.parquet", B8)
        return real(*args)

    monkeypatch.setattr(pipeline, "global_dedup", grow_b)
    with pytest.raises(InputChangedError, match=r"b\.parquet changed during this run"):
        run_filter(filter_cfg(input=[str(src)], output=str(out)), progress=False)
    assert not (out / "stats.json").exists()


def test_the_same_file_twice_is_refused(filter_cfg, tmp_path):
    _corpus(tmp_path / "src", {"a.parquet": A})
    with pytest.raises(ValueError, match="listed more than once"):
        run_filter(filter_cfg(input=[str(tmp_path / "src"), str(tmp_path / "src" / "a.parquet")]), progress=False)


KILL_SCRIPT = """
import sys
from llmfoundry_lite.config import load_config
from llmfoundry_lite.filtering.config import FilterConfig
from llmfoundry_lite.filtering.pipeline import run_filter
cfg = load_config(FilterConfig, None, [], flags={"input": [sys.argv[1]], "output": sys.argv[2], "workers": 1,
                                                 "report": False})
run_filter(cfg, progress=False)
"""


def test_sigkill_then_a_replaced_input_gives_the_fresh_result(tmp_path, fresh):
    src, out = tmp_path / "src", tmp_path / "out"
    many = {f"p{i}.parquet": [stack_row(f"p{i}_{j}.py", module(100 * i + j)) for j in range(30)] for i in range(6)}
    _corpus(src, many)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(src), str(out)], cwd=os.getcwd())
    deadline = time.monotonic() + 120
    while not list((out / "work" / "pass1").glob("*.done")) if (out / "work" / "pass1").is_dir() else True:
        assert proc.poll() is None and time.monotonic() < deadline, "filter finished or hung before the kill"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "stats.json").exists()
    done = len(list((out / "work" / "pass1").glob("*.done")))
    assert 1 <= done < 6
    time.sleep(0.01)
    many["p0.parquet"] = [stack_row("p0_new.py", module(999))]  # the finished file is replaced before the rerun
    _corpus(src, {"p0.parquet": many["p0.parquet"]})
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(src), str(out)], check=True, cwd=os.getcwd())
    stats = json.loads((out / "stats.json").read_text())
    fresh_stats, fresh_out = fresh(many, "kill")
    assert stats["seen"] == 1 + 5 * 30 == fresh_stats["seen"]
    assert _outputs(out) == fresh_out
    kept = [r for f in sorted((out / "kept").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert "p0_new.py" in {r["path"] for r in kept} and "p0_0.py" not in {r["path"] for r in kept}
