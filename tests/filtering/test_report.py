import json

from llmfoundry_lite.filtering.pipeline import run_filter
from llmfoundry_lite.filtering.report import format_headline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_pngs_and_stats_layout(filter_cfg, tmp_path):
    stats = run_filter(filter_cfg(report=True), progress=False)
    out = tmp_path / "out"
    assert stats["report"] == ["report/distributions.png", "report/languages.png", "report/pii_and_duplicates.png",
                               "report/rejections.png"]
    for name in stats["report"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((out / "stats.json").read_text())
    assert saved["languages"]["Python"]["files_before"] == 8
    assert saved["languages"]["Python"]["files_after"] == 2
    assert saved["rejected_by_reason_and_lang"]["autogen:minified"] == {"JavaScript": 1}
    assert saved["dedup"]["exact_cluster_sizes"] == {"2": 1} and saved["dedup"]["near_cluster_sizes"] == {"2": 1}


def test_headline_table_lists_reasons_and_balance():
    stats = {"seen": 10, "kept": 6, "rejected": 3, "skipped": 1,
             "rejected_by_reason": {"parse_error": 2, "near_duplicate": 1}, "skipped_by_reason": {"empty": 1},
             "languages": {"Python": {"files_before": 9, "files_after": 6, "bytes_before": 2_000_000, "bytes_after": 1_500_000}},
             "pii": {"email": 2, "ip_address": 0, "key": 1}, "dedup": {"exact_clusters": 0, "near_clusters": 1}}
    text = format_headline(stats)
    assert "  parse_error                        2   20.0%" in text
    assert "  skipped:empty                      1   10.0%" in text
    assert "Python                   9         6      2.00      1.50" in text
    assert "PII redacted: email=2, ip_address=0, key=1" in text
    assert "kept + rejected + skipped = 6 + 3 + 1 = 10 == seen 10" in text


def test_report_can_be_added_to_a_finished_run(filter_cfg, tmp_path):
    first = run_filter(filter_cfg(report=False), progress=False)
    assert "report" not in first and not (tmp_path / "out" / "report").exists()
    again = run_filter(filter_cfg(report=True), progress=False)
    assert len(again["report"]) == 4 and (tmp_path / "out" / "report" / "languages.png").exists()
    assert {k: v for k, v in again.items() if k != "report"} == first
