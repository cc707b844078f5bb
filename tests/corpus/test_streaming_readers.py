"""The readers stream: a JSONL byte range holds the lines that start in it (Hadoop's rule, whatever the cut),
and Parquet rows come in batches of about the bytes asked for, never a row group at a time."""

import json
import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from llmfoundry_lite.corpus.readers import InputShard, iter_documents, open_parquet, parquet_batches, read_jsonl


def _first_row(data: bytes, start: int) -> int:
    """The line number of the first line starting at or after ``start``."""
    if start == 0:
        return 0
    return data.count(b"\n", 0, start - 1) + 1


def test_jsonl_ranges_cut_anywhere_hold_each_line_once_with_its_row(tmp_path):
    lines = [json.dumps({"content": f"x = {i}\n" * (1 + i % 5), "path": f"m{i}.py"}) for i in range(40)]
    lines[7] = ""  # a blank line at a cut must not shift rows
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    whole = list(iter_documents(InputShard(str(path), "jsonl"), Counter()))
    rng = random.Random(0)
    for _ in range(30):
        cuts = sorted({0, len(data), *rng.sample(range(1, len(data)), rng.randint(1, 12))})
        docs = [d for a, b in zip(cuts, cuts[1:], strict=False)
                for d in read_jsonl(str(path), Counter(), byte_range=(a, b), first_row=_first_row(data, a))]
        assert docs == whole


def test_a_later_range_whose_first_record_lacks_content_skips_it_as_a_whole_read_does(tmp_path):
    lines = [json.dumps({"content": "a = 1\n", "path": "a.py"}), json.dumps({"path": "b.py"}),
             json.dumps({"content": "c = 1\n", "path": "c.py"})]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "a.jsonl"
    path.write_bytes(data)
    cut = len(lines[0]) + 1
    skips: Counter = Counter()
    rest = list(read_jsonl(str(path), skips, byte_range=(cut, len(data)), first_row=1))
    assert [d["row"] for d in rest] == [2] and skips == Counter(null_content=1)


def test_parquet_rows_come_in_batches_of_about_the_bytes_asked_for(tmp_path):
    docs = [f"# {i}\n" + "y = 2\n" * (10 + i % 90) for i in range(2_000)]
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"content": docs}), path, row_group_size=1_500)  # groups of 1,500 and 500 rows
    pf = open_parquet(str(path))
    batch_bytes = 20_000
    got = []
    for g in (0, 1):
        group = pf.metadata.row_group(g)
        per_row = group.total_byte_size / group.num_rows
        batches = list(parquet_batches(pf, [g], ["content"], batch_bytes))
        assert len(batches) >= group.total_byte_size // batch_bytes
        assert max(len(b) for b in batches) <= batch_bytes / per_row
        got += [r["content"] for b in batches for r in b]
    assert got == docs
    assert [len(b) for b in parquet_batches(pf, [1], ["content"], 1)] == [1] * 500  # at least one row a batch
