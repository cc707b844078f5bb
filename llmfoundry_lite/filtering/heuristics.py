"""Line statistics with ONE pinned definition each, and the threshold filter built on them.

Public projects disagree on these numbers (``len(text) / n_lines`` vs the mean of per-line
lengths; ``splitlines`` vs ``split("\\n")``), so they are pinned here and tested:

- **lines**: ``text.split("\\n")``, minus the one empty piece after a final newline; a trailing
  ``"\\r"`` is not part of a line (CRLF files measure like LF files). Other separators that
  ``str.splitlines`` knows (form feed, U+2028, ...) do NOT end a line.
- **line length**: number of characters (Unicode code points) of a line as defined above.
- **max_line_length**: the largest line length (0 for no lines).
- **mean_line_length**: arithmetic mean of the line lengths (0.0 for no lines).
- **alphanum_fraction**: characters with ``str.isalnum()`` divided by ``len(text)``, counting
  every character, newlines included (0.0 for empty text).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import HeuristicsConfig


_ASCII_ALNUM = (string.ascii_letters + string.digits).encode()


@dataclass(frozen=True)
class LineStats:
    """The three statistics the heuristics filter reads (definitions in the module docstring)."""

    max_line_length: int
    mean_line_length: float
    alphanum_fraction: float


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` by the pinned definition (module docstring)."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def alphanum_fraction(text: str) -> float:
    """Share of characters of ``text`` for which ``str.isalnum()`` holds."""
    if not text:
        return 0.0
    if text.isascii():  # fast path, same answer: for ASCII, isalnum is exactly [A-Za-z0-9]
        data = text.encode("ascii")
        return (len(data) - len(data.translate(None, _ASCII_ALNUM))) / len(data)
    return sum(map(str.isalnum, text)) / len(text)


def line_stats(text: str) -> LineStats:
    """Compute :class:`LineStats` for one document."""
    lengths = [len(line) for line in split_lines(text)]
    if not lengths:
        return LineStats(0, 0.0, alphanum_fraction(text))
    return LineStats(max(lengths), sum(lengths) / len(lengths), alphanum_fraction(text))


def thresholds_for(lang: str, cfg: HeuristicsConfig) -> tuple[int, float, float]:
    """``(max_line_length, mean_line_length, min_alphanum_fraction)`` for ``lang`` after overrides."""
    over = cfg.overrides.get(lang)
    max_len, mean_len, alnum = cfg.max_line_length, cfg.mean_line_length, cfg.min_alphanum_fraction
    if over is not None:
        max_len = over.max_line_length if over.max_line_length is not None else max_len
        mean_len = over.mean_line_length if over.mean_line_length is not None else mean_len
        alnum = over.min_alphanum_fraction if over.min_alphanum_fraction is not None else alnum
    return max_len, mean_len, alnum


def heuristics_reason(stats: LineStats, lang: str, cfg: HeuristicsConfig) -> str | None:
    """The first violated threshold (``max_line_length``, ``mean_line_length``, ``alphanum_fraction``) or None."""
    max_len, mean_len, alnum = thresholds_for(lang, cfg)
    if stats.max_line_length > max_len:
        return "max_line_length"
    if stats.mean_line_length > mean_len:
        return "mean_line_length"
    if stats.alphanum_fraction < alnum:
        return "alphanum_fraction"
    return None
