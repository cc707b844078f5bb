import pytest

from benchmarks.quality.pii_evaluate import (
    GoldSpan,
    TypeScore,
    evalset_files,
    evaluate,
    parse_labeled,
    score_document,
)
from llmfoundry_lite.filtering.pii import Finding, PIIConfig


def test_parse_labeled_strips_markers_and_keeps_offsets():
    text, gold = parse_labeled("a ⟦email:x@acme.io⟧ b ⟦ip:34.1.2.3⟧/24 ⟦key:AKIA\nZZ⟧")
    assert text == "a x@acme.io b 34.1.2.3/24 AKIA\nZZ"
    assert gold == [GoldSpan(2, 11, "email"), GoldSpan(14, 22, "ip_address"), GoldSpan(26, 33, "key")]
    assert [text[g.start : g.end] for g in gold] == ["x@acme.io", "34.1.2.3", "AKIA\nZZ"]


def test_malformed_marker_is_an_error():
    with pytest.raises(ValueError, match="malformed"):
        parse_labeled("x = ⟦mail:a@b.io⟧")


def test_score_counts_overlaps_once_and_by_type():
    gold = [GoldSpan(0, 10, "key"), GoldSpan(20, 30, "email")]
    found = [
        Finding(2, 6, "key", "r"),  # overlaps the key: TP
        Finding(6, 9, "key", "r"),  # second piece of the same key: FP
        Finding(20, 30, "ip_address", "ipv4"),  # wrong type: FP for ip, email missed
    ]
    scores = {k: TypeScore() for k in ("email", "ip_address", "key")}
    score_document("x" * 40, gold, found, scores)
    assert (scores["key"].tp, scores["key"].fp, scores["key"].fn) == (1, 1, 0)
    assert (scores["email"].tp, scores["email"].fn) == (0, 1)
    assert scores["ip_address"].fp == 1 and scores["ip_address"].precision == 0.0
    assert scores["key"].precision == 0.5 and scores["key"].recall == 1.0


def test_shipped_evalset_meets_the_quality_bar():
    files = evalset_files()
    assert {f.parent.name for f in files} == {"dev", "heldout", "heldout2"} and len(files) >= 40
    scores = evaluate(files, PIIConfig())
    assert scores["email"].tp + scores["email"].fn >= 60
    assert scores["ip_address"].tp + scores["ip_address"].fn >= 50
    assert scores["key"].tp + scores["key"].fn >= 60
    for kind, s in scores.items():
        assert s.precision >= 0.95, (kind, s.false_positives)
    assert scores["email"].recall >= 0.95 and scores["ip_address"].recall >= 0.95
    assert scores["key"].recall >= 0.90, scores["key"].misses


def test_detect_secrets_baseline_finds_known_formats_in_memory_files():
    from benchmarks.quality.pii_baseline import baseline_settings, scan_with_tempfile

    text = 'AWS_ACCESS_KEY_ID = "AKIA7LRWFVEALKXWKKXZ"\n'
    with baseline_settings():
        found = scan_with_tempfile(text)
    assert [(text[f.start : f.end], f.rule) for f in found] == [("AKIA7LRWFVEALKXWKKXZ", "AWS Access Key")]
