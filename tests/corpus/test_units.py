"""Units hold about ``unit_bytes``: a large JSONL file is cut into line-aligned byte ranges that keep every
record's row number; a gzipped one cannot be cut; a huge row group stays one unit, read in batches."""

import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmfoundry_lite.corpus.readers import InputShard, iter_documents
from llmfoundry_lite.corpus.units import iter_unit, plan_units


def _jsonl_bytes(n: int) -> bytes:
    """Records of varied length, without ids (a missing id is derived from the row number), among the lines
    readers pass over or skip: blank and whitespace lines, broken JSON, a non-object, null content."""
    lines = []
    for i in range(n):
        lines.append(json.dumps({"content": f"def f{i}():\n    return {i}\n" + "# pad\n" * (i % 7), "path": f"m{i}.py"}))
        if i % 9 == 4:
            lines.append("")
        if i % 11 == 5:
            lines.append("   ")
        if i % 13 == 6:
            lines.append("{broken")
        if i % 17 == 7:
            lines.append("[1, 2]")
        if i % 19 == 8:
            lines.append(json.dumps({"content": None, "path": "null.py"}))
    return "\n".join(lines).encode()  # no newline after the last line


def _whole(path: str) -> tuple[list[dict], Counter]:
    skips: Counter = Counter()
    return list(iter_documents(InputShard(path, "jsonl"), skips)), skips


@pytest.mark.parametrize("unit_bytes", [1, 300, 2_000])
def test_a_large_jsonl_file_is_cut_at_lines_and_keeps_every_row_number(tmp_path, unit_bytes):
    data = _jsonl_bytes(120)
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    units = plan_units([str(path)], unit_bytes)
    assert len(units) > 1 and len(units) >= len(data) // (unit_bytes + 200)
    assert units[0].start == 0 and units[0].byte_range[0] == 0 and units[-1].byte_range[1] == len(data)
    assert units[-1].stop == data.count(b"\n") + 1  # every line, the last one without a newline included
    for before, after in zip(units, units[1:], strict=False):
        cut = after.byte_range[0]
        assert before.byte_range[1] == cut and before.stop == after.start
        assert data[cut - 1:cut] == b"\n" and after.start == data[:cut].count(b"\n")  # a line starts at the cut
        assert cut - before.byte_range[0] >= unit_bytes
    expected, expected_skips = _whole(str(path))
    skips: Counter = Counter()
    docs = [d for u in units for d in iter_unit(u, skips)]
    assert docs == expected and skips == expected_skips  # rows, derived ids and skip counts as one read gives
    for u in units:
        assert all(u.start <= d["row"] < u.stop for d in iter_unit(u, Counter()))
    assert len({u.name for u in units}) == len(units)


def test_a_jsonl_file_within_unit_bytes_is_one_whole_file_unit(tmp_path):
    path = tmp_path / "small.jsonl"
    path.write_bytes(_jsonl_bytes(20) + b"\n")
    (unit,) = plan_units([str(path)], path.stat().st_size)
    assert (unit.start, unit.stop, unit.byte_range) == (0, None, None)


def test_a_gzipped_jsonl_file_cannot_be_cut_and_is_one_streamed_unit(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(_jsonl_bytes(120)))
    (unit,) = plan_units([str(path)], 1)
    assert unit.stop is None and unit.byte_range is None
    skips: Counter = Counter()
    assert list(iter_unit(unit, skips)) == _whole(str(path))[0] and sum(skips.values()) > 0


def test_a_row_group_larger_than_unit_bytes_is_one_unit_read_in_batches(tmp_path):
    docs = [f"# module {i}\n" + "value = compute(a, b)\n" * 40 for i in range(3_000)]
    path = tmp_path / "one_group.parquet"
    pq.write_table(pa.table({"content": docs, "path": [f"m{i}.py" for i in range(3_000)]}), path,
                   row_group_size=3_000)
    group_bytes = pq.ParquetFile(path).metadata.row_group(0).total_byte_size
    unit_bytes = group_bytes // 50
    (unit,) = plan_units([str(path)], unit_bytes)
    assert (unit.groups, unit.start, unit.stop) == ((0,), 0, 3_000)
    assert 0 < unit.batch_bytes <= unit_bytes // 4  # read a fraction of unit_bytes at a time
    got = list(iter_unit(unit, Counter()))
    assert [d["row"] for d in got] == list(range(3_000)) and [d["content"] for d in got] == docs
