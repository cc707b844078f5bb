import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.quality.pii_bench import Rate, format_rates, load_sample, run
from llmfoundry_lite.filtering.pii import PIIConfig


def test_load_sample_is_seeded_and_bounded(tmp_path):
    pq.write_table(pa.table({"content": [f"doc {i}" for i in range(10)]}), tmp_path / "data-00000.parquet")
    a = load_sample(tmp_path, 4, seed=1)
    assert a == load_sample(tmp_path, 4, seed=1) and len(a) == 4 and len(set(a)) == 4
    with pytest.raises(FileNotFoundError, match="make demo"):
        load_sample(tmp_path / "missing", 4)


def test_run_reports_every_stage_against_the_peer():
    texts = ['HOST = "34.117.59.81"\nAWS_ACCESS_KEY_ID = "AKIA7LRWFVEALKXWKKXZ"\n', "x = 1\n"]
    rates = run(texts, peer_docs=1, cfg=PIIConfig())
    assert [r.docs for r in rates] == [2, 2, 2, 2, 1]
    assert rates[-1].name.startswith("detect-secrets")
    table = format_rates(rates).splitlines()
    assert len(table) == 6 and table[-1].endswith("1.0x")


def test_rates_are_per_second():
    r = Rate("x", docs=10, mbytes=5.0, seconds=2.0)
    assert (r.mb_per_s, r.docs_per_s) == (2.5, 5.0)
