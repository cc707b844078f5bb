"""Extraction over units: the same output for any worker count, finished units reused after a kill or
when inputs change, and nothing stale reused."""

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llmfoundry_lite.sandbox import SandboxConfig
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.pipeline import run_synthesis
from tests.filtering.stack_rows import stack_row, stack_schema

ROOT = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Real documented code: stdlib modules with doctests and plain functions alike.
MODULES = sorted(p for p in STDLIB.glob("*.py") if 2_000 < p.stat().st_size < 60_000)[:48]
OUTPUTS = ("instruct.jsonl", "train.jsonl", "heldout.jsonl")


def write_parts(folder: Path, modules: list[Path], per_group: int = 2, parts: int = 2) -> Path:
    """``parts`` Parquet files of the modules, ``per_group`` rows per row group (one unit each at unit_bytes=1)."""
    folder.mkdir(parents=True, exist_ok=True)
    share = -(-len(modules) // parts)
    for k in range(parts):
        rows = [stack_row(f"lib/{m.name}", m.read_text(encoding="utf-8", errors="replace"), repo=f"octo/{m.stem}")
                for m in modules[k * share : (k + 1) * share]]  # fmt: skip
        pq.write_table(pa.Table.from_pylist(rows, schema=stack_schema()), folder / f"part-{k}.parquet",
                       row_group_size=per_group)  # fmt: skip
    return folder


def synth(inputs: Path, out: Path, workers: int) -> dict:
    cfg = SynthConfig(input=[str(inputs)], output=str(out), workers=workers, unit_bytes=1, report=False,
                      sandbox=SandboxConfig(prestart=0))  # fmt: skip
    return run_synthesis(cfg)


def same_output(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = (json.loads((d / "stats.json").read_text()) for d in (a, b))
    for s in (sa, sb):
        for volatile in ("config", "seconds", "extract"):
            s.pop(volatile)
        for echo in ("program_wall_s", "workers"):  # timings, and the worker count echoed from the config
            s["verify"].pop(echo)
    assert sa == sb


def test_any_worker_count_gives_the_same_output_and_finished_units_are_reused(tmp_path):
    inputs = write_parts(tmp_path / "in", MODULES)
    one = synth(inputs, tmp_path / "one", workers=1)
    two = synth(inputs, tmp_path / "two", workers=2)
    assert one["extract"] == two["extract"] == {"units": 24, "reused": 0}
    assert one["kept"] > 100
    same_output(tmp_path / "one", tmp_path / "two")
    # A rerun reuses every unit; a unit file lost or cut short by a kill mid-write is extracted again.
    work = sorted((tmp_path / "two" / "work" / "extract").glob("*.pkl"))
    work[0].unlink()
    work[1].write_bytes(work[1].read_bytes()[:100])
    again = synth(inputs, tmp_path / "two", workers=2)
    assert again["extract"] == {"units": 24, "reused": 22}
    same_output(tmp_path / "one", tmp_path / "two")


def test_replaced_added_and_removed_inputs_redo_exactly_their_units(tmp_path):
    inputs = write_parts(tmp_path / "in", MODULES[:16])
    synth(inputs, tmp_path / "out", workers=2)
    write_parts(tmp_path / "new", MODULES[16:20], parts=1)  # a third file: 2 units
    os.replace(tmp_path / "new" / "part-0.parquet", inputs / "part-2.parquet")
    grown = synth(inputs, tmp_path / "out", workers=2)
    assert grown["extract"] == {"units": 10, "reused": 8}
    time.sleep(0.01)  # a new mtime even on coarse clocks
    write_parts(tmp_path / "repl", MODULES[20:28], parts=1)  # part-1 replaced: its 4 units -> 4 new ones
    os.replace(tmp_path / "repl" / "part-0.parquet", inputs / "part-1.parquet")
    (inputs / "part-2.parquet").unlink()
    changed = synth(inputs, tmp_path / "out", workers=1)
    assert changed["extract"] == {"units": 8, "reused": 4}
    assert len(list((tmp_path / "out" / "work" / "extract").glob("*.pkl"))) == 8  # stale units deleted
    synth(inputs, tmp_path / "fresh", workers=1)
    same_output(tmp_path / "out", tmp_path / "fresh")


def test_sigkill_mid_extraction_then_rerun_reuses_finished_units(tmp_path):
    inputs = write_parts(tmp_path / "in", MODULES, per_group=1)  # 48 units
    out = tmp_path / "out"
    cmd = [sys.executable, "data_prep/synthesize_instruct.py", "--input", str(inputs), "--output", str(out),
           "workers=1", "unit_bytes=1", "report=false", "sandbox.prestart=0"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = out / "work" / "extract"
    deadline = time.monotonic() + 120
    while not (work.is_dir() and any(work.glob("*.pkl"))):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before any unit finished"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = len(list(work.glob("*.pkl")))
    assert 1 <= done < 48
    resumed = synth(inputs, out, workers=2)
    assert resumed["extract"] == {"units": 48, "reused": done}
    synth(inputs, tmp_path / "fresh", workers=1)
    same_output(out, tmp_path / "fresh")
