"""License and opt-out lists are compiled once per task (a unit), never per document, from the bytes the driver read."""

import dataclasses

import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.corpus.identity import file_identity
from llmfoundry_lite.corpus.units import plan_units
from llmfoundry_lite.filtering import permissions
from llmfoundry_lite.filtering.list_files import read_list_files
from llmfoundry_lite.filtering.shards import filter_shard
from tests.filtering.stack_rows import module, stack_row, write_stack


class CountingList(list):
    """A config list that counts how often it is read (iterated) — all instances share one count."""

    reads = 0

    def __iter__(self):
        CountingList.reads += 1
        return super().__iter__()


def _units(tmp_path, docs_per_file: int):
    """Two Parquet inputs (two units) of ``docs_per_file`` rows over four repositories and three licenses."""
    for f in range(2):
        rows = [stack_row(f"f{f}/m{i}.py", module(100 * f + i, functions=3), repo=f"org/repo{i % 4}",
                          licenses=[["MIT"], ["GPL-3.0"], ["Apache-2.0", "GPL-3.0"]][i % 3])
                for i in range(docs_per_file)]
        write_stack(tmp_path / "stack" / f"part{f}.parquet", rows)
    units = plan_units([str(tmp_path / "stack")], 1 << 30)
    assert len(units) == 2
    return units


def _reasons(work, unit):
    return pq.read_table(work / "pass1" / f"{unit.name}.parquet", columns=["reason"]).column("reason").to_pylist()


def test_license_and_opt_out_lists_are_compiled_once_per_task(filter_cfg, tmp_path, monkeypatch):
    docs = 60
    units = _units(tmp_path, docs)
    listing = tmp_path / "opt_out.txt"  # a 20k-repository published list that names org/repo1
    listing.write_text("".join(f"someone{i}/project{i}\n" for i in range(20_000)) + "ORG/Repo1\n")
    parsed = []
    real_parse = permissions.parse_list_file
    monkeypatch.setattr(permissions, "parse_list_file", lambda data, path: parsed.append(path) or real_parse(data, path))
    cfg = filter_cfg("dedup.near=false", "decontam.enabled=false")
    cfg = dataclasses.replace(
        cfg, license=dataclasses.replace(cfg.license, allow=CountingList(["MIT", "Apache-2.0"])),
        opt_out=dataclasses.replace(cfg.opt_out, files=[str(listing)],
                                    repositories=CountingList([f"x{i}/y{i}" for i in range(20_000)] + ["org/repo2"])))
    (tmp_path / "work" / "pass1").mkdir(parents=True)
    CountingList.reads = 0
    lists = read_list_files([str(listing)])
    for i, unit in enumerate(units):
        counts = filter_shard(i, unit, file_identity(unit.shard), cfg, str(tmp_path / "work"), lists)
        assert counts["seen"] == docs
    # each list is read once per task: the allow list, the inline opt-out entries and the file
    assert (CountingList.reads, len(parsed)) == (2 * len(units), len(units))
    # and the verdicts are the lists': GPL-only rows fail the license, repo1 (file) and repo2 (inline) opted out
    for unit in units:
        expected = ["license_not_allowed" if i % 3 == 1 else "opt_out" if i % 4 in (1, 2) else ""
                    for i in range(docs)]
        assert _reasons(tmp_path / "work", unit) == expected


def test_tasks_decide_by_the_list_bytes_the_driver_shipped_not_the_file_on_their_disk(filter_cfg, tmp_path):
    units = _units(tmp_path, 8)
    listing = tmp_path / "opt_out.txt"
    listing.write_text("org/repo0\n")
    cfg = filter_cfg("dedup.near=false", "decontam.enabled=false", f"opt_out.files=[{listing}]")
    (tmp_path / "work" / "pass1").mkdir(parents=True)
    shipped = read_list_files([str(listing)])
    listing.write_text("org/repo3\n")  # what an executor's disk may hold under that path: another version
    filter_shard(0, units[0], file_identity(units[0].shard), cfg, str(tmp_path / "work"), shipped)
    listing.unlink()  # or nothing at all
    filter_shard(1, units[1], file_identity(units[1].shard), cfg, str(tmp_path / "work"), shipped)
    first, second = (_reasons(tmp_path / "work", u) for u in units)
    assert [i for i, r in enumerate(first) if r == "opt_out"] == [0, 4]
    assert [i for i, r in enumerate(second) if r == "opt_out"] == [0, 4]
    (tmp_path / "work2" / "pass1").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="opt_out.files: .*opt_out.txt was not read on the driver"):
        filter_shard(0, units[0], file_identity(units[0].shard), cfg, str(tmp_path / "work2"), {})
