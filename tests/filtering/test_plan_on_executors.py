"""With engine=spark the driver lists the inputs and numbers the units, nothing more: schema checks, identities,
Parquet footers and JSONL cut scans run in executors, and so do hashing and uploading the published tree; what
the run keeps, rejects, counts and publishes equals the local engine's."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from llmfoundry_lite.corpus import identity as identity_mod
from llmfoundry_lite.corpus import publish as publish_mod
from llmfoundry_lite.corpus import readers
from llmfoundry_lite.corpus import units as units_mod
from llmfoundry_lite.filtering import pipeline
from llmfoundry_lite.filtering.pipeline import run_filter
from tests.filtering.stack_rows import module, stack_row, stack_schema

UNIT_BYTES = 2000  # the JSONL files are cut into byte ranges, the Parquet file into runs of row groups


def _driver_reads_and_uploads_nothing(monkeypatch) -> list[str]:
    """Every per-file read of planning and every hash of publishing raise in this process (the driver; executors
    are other processes); returns the list of files this process uploads."""
    def forbidden(name):
        def raise_(*args, **kwargs):
            raise AssertionError(f"{name} ran on the driver")
        return raise_

    for mod, name in ((units_mod, "_parquet_groups"), (units_mod, "_jsonl_cuts"), (units_mod, "check_schema"),
                      (units_mod, "file_identity"), (readers, "check_schema"), (identity_mod, "file_identity"),
                      (pipeline, "check_schema"), (pipeline, "file_identity"), (publish_mod, "_sha256")):
        # raising=False: the driver's modules hold these names or not (units.check_schema came with tasks)
        monkeypatch.setattr(mod, name, forbidden(f"{mod.__name__}.{name}"), raising=False)
    uploads: list[str] = []
    real_put = LocalFileSystem.put_file
    monkeypatch.setattr(LocalFileSystem, "put_file", lambda self, lpath, rpath, **kw: (
        uploads.append(Path(rpath).name), real_put(self, lpath, rpath, **kw))[1])
    return uploads


def _published(root: Path) -> dict[str, bytes]:
    """The data parts and stats of a published tree (its config files name the engine and output: they differ)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (p.suffix == ".parquet" or p.name == "stats.json")}


@pytest.mark.slow
def test_a_spark_run_plans_and_publishes_in_executors_and_equals_the_local_engine(filter_cfg, filter_corpus, tmp_path,
                                                                                   spark, monkeypatch):
    rows = [stack_row(f"t{i}.py", module(i, functions=4)) for i in range(12)]
    rows += [stack_row("copy.py", module(3, functions=4))]  # an exact duplicate across units
    pq.write_table(pa.Table.from_pylist(rows, schema=stack_schema()), tmp_path / "tables.parquet", row_group_size=3)
    kw = {"input": [str(filter_corpus), str(tmp_path / "tables.parquet")], "unit_bytes": UNIT_BYTES}
    local = run_filter(filter_cfg(output=f"local://{tmp_path}/lake/local", staging=str(tmp_path / "stage-local"),
                                  **kw), progress=False)
    assert local["units"] > 6 and local["dedup"]["exact_clusters"] >= 1  # every file was cut: several units each
    uploads = _driver_reads_and_uploads_nothing(monkeypatch)
    on_spark = run_filter(filter_cfg(output=f"local://{tmp_path}/lake/spark", staging=str(tmp_path / "stage-spark"),
                                     engine="spark", **kw), progress=False)
    assert uploads == ["stats.json"]
    assert on_spark == local and on_spark["published"]["uploaded"] > 2
    assert _published(tmp_path / "lake" / "spark") == _published(tmp_path / "lake" / "local")
    assert any(name.startswith("kept/") for name in _published(tmp_path / "lake" / "spark"))
