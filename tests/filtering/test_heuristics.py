import pytest

from llmfoundry_lite.filtering.config import HeuristicsConfig, LangThresholds
from llmfoundry_lite.filtering.heuristics import (
    LineStats,
    alphanum_fraction,
    heuristics_reason,
    line_stats,
    split_lines,
    thresholds_for,
)


@pytest.mark.parametrize(("text", "lines"), [
    ("", []),
    ("a", ["a"]),
    ("a\n", ["a"]),
    ("a\n\n", ["a", ""]),
    ("ab\r\ncd\r\n", ["ab", "cd"]),
    ("x\fy\u2028z\n", ["x\fy\u2028z"]),  # only \n ends a line, unlike str.splitlines
    ("\n", [""]),
])
def test_split_lines_pinned_definition(text, lines):
    assert split_lines(text) == lines


def test_mean_is_mean_of_line_lengths_not_len_over_lines():
    # lengths 1 and 5: mean 3.0; len(text)/n_lines would give 4.0 (newlines counted)
    stats = line_stats("a\nbbbbb\n")
    assert stats == LineStats(max_line_length=5, mean_line_length=3.0, alphanum_fraction=6 / 8)


def test_line_length_counts_code_points_and_ignores_cr():
    stats = line_stats("é€😀\r\nab\r\n")
    assert stats.max_line_length == 3
    assert stats.mean_line_length == 2.5


def test_alphanum_fraction_counts_every_char_including_newlines():
    assert alphanum_fraction("ab, c\n") == pytest.approx(3 / 6)
    assert alphanum_fraction("") == 0.0
    assert alphanum_fraction("__--") == 0.0


@pytest.mark.parametrize("text", ["héllo wörld 123 ¼ ٣", "x = 'ünïcödé'\n", "日本語のコード = 1"])
def test_alphanum_non_ascii_path_matches_isalnum(text):
    assert alphanum_fraction(text) == pytest.approx(sum(c.isalnum() for c in text) / len(text))


def test_empty_text_stats():
    assert line_stats("") == LineStats(0, 0.0, 0.0)


def test_reasons_in_order_and_at_the_boundary():
    cfg = HeuristicsConfig()
    assert heuristics_reason(LineStats(1000, 100.0, 0.25), "Python", cfg) is None  # limits are inclusive
    assert heuristics_reason(LineStats(1001, 200.0, 0.1), "Python", cfg) == "max_line_length"
    assert heuristics_reason(LineStats(10, 100.5, 0.1), "Python", cfg) == "mean_line_length"
    assert heuristics_reason(LineStats(10, 10.0, 0.249), "Python", cfg) == "alphanum_fraction"


def test_per_language_override_replaces_only_given_thresholds():
    cfg = HeuristicsConfig(overrides={"JSON": LangThresholds(min_alphanum_fraction=0.1)})
    assert thresholds_for("JSON", cfg) == (1000, 100.0, 0.1)
    assert thresholds_for("Python", cfg) == (1000, 100.0, 0.25)
    assert heuristics_reason(LineStats(10, 10.0, 0.2), "JSON", cfg) is None
    assert heuristics_reason(LineStats(10, 10.0, 0.2), "Python", cfg) == "alphanum_fraction"


def test_bad_threshold_names_key():
    with pytest.raises(ValueError, match="heuristics.min_alphanum_fraction"):
        HeuristicsConfig(min_alphanum_fraction=1.5)
