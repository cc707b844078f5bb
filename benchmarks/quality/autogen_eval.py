"""Precision and recall of the auto-generated rules on a labelled set of real files.

The set is a committed TSV (``autogen_labels.tsv`` beside this module): one
``label<TAB>pattern[<TAB>limit[<TAB>note]]`` entry a line (``#`` starts a comment line), label
``generated:<rule>`` (the first rule in ``autogen.rules`` that should reject the file) or
``handwritten``. A pattern is a path or a glob on this machine image, with ``{stdlib}`` and ``{site}``
standing for the running interpreter's standard library and site-packages, and
``archive.zip!member-glob`` reading members of a zip (the JDK's ``src.zip``). A glob resolves to its
sorted matches and keeps ``limit`` (default 1) of them, evenly spaced, so a machine with the same image
always evaluates the same files. A pattern that matches nothing, or a file the Stack readers would not
admit (binary, non-UTF-8, empty), is a counted skip in the report, never a silent gap.

Files are read as ``corpus.readers.normalize`` reads a source tree (BOM dropped, language from
the path), so the rules see exactly what the filter sees.
"""

from __future__ import annotations

import functools
import glob
import re
import sysconfig
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from llmfoundry_lite.corpus.readers import normalize
from llmfoundry_lite.filtering.autogen import RULES, autogen_rule, leading_lines
from llmfoundry_lite.filtering.config import AutogenConfig
from llmfoundry_lite.filtering.heuristics import line_stats

HANDWRITTEN = "handwritten"
# The words a naive header check keys on; hand-written files with them are the hard negatives.
MARKER_WORDS = re.compile(r"\bgenerated\b|do\s+not\s+(?:edit|modify)", re.I)
PLACEHOLDERS = {"stdlib": sysconfig.get_paths()["stdlib"], "site": sysconfig.get_paths()["purelib"]}


@dataclass(frozen=True)
class LabelEntry:
    """One line of the labels file."""

    label: str  # "handwritten" or a rule name
    pattern: str
    limit: int
    line_no: int


@dataclass(frozen=True)
class LabelledDoc:
    """A labelled file as the filter would see it."""

    label: str
    doc: dict
    line_no: int


@dataclass
class RuleScore:
    """Counts for one rule (or, for ``overall``, for "some rule fired")."""

    support: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.support if self.support else None


@dataclass
class EvalResult:
    """Per-rule scores, the overall generated-vs-handwritten score and every misclassified file."""

    rules: dict[str, RuleScore]
    overall: RuleScore
    handwritten: int = 0
    handwritten_with_marker_words: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (expected, got, path)


def parse_labels(text: str) -> list[LabelEntry]:
    """Entries of a labels file; a bad label, limit or field count raises ``ValueError`` naming the line."""
    entries = []
    for no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = raw.rstrip("\n").split("\t")
        if not 2 <= len(fields) <= 4:
            raise ValueError(f"labels line {no}: expected label<TAB>pattern[<TAB>limit[<TAB>note]], got {raw!r}")
        label, pattern = fields[0], fields[1]
        rule = label.removeprefix("generated:")
        if label != HANDWRITTEN and (not label.startswith("generated:") or rule not in RULES):
            raise ValueError(f"labels line {no}: unknown label {label!r}; use handwritten or generated:<rule> "
                             f"with a rule from {sorted(RULES)}")
        limit_text = fields[2].strip() if len(fields) > 2 else ""
        if limit_text and (not limit_text.isdigit() or int(limit_text) == 0):
            raise ValueError(f"labels line {no}: limit must be a positive integer, got {limit_text!r}")
        entries.append(LabelEntry(HANDWRITTEN if label == HANDWRITTEN else rule, pattern,
                                  int(limit_text or 1), no))
    return entries


def _spread(matches: list[str], limit: int) -> list[str]:
    """``limit`` evenly spaced items of the sorted ``matches`` (all of them when there are fewer)."""
    if len(matches) <= limit:
        return matches
    return [matches[i * len(matches) // limit] for i in range(limit)]


def resolve(pattern: str) -> list[str]:
    """Every file ``pattern`` matches, sorted (before the limit is applied); zip members as ``archive!member``."""
    pattern = pattern.format(**PLACEHOLDERS)
    if "!" in pattern:
        archive, member = pattern.split("!", 1)
        if not Path(archive).is_file():
            return []
        names = _zip(archive).namelist()
        return [f"{archive}!{n}" for n in sorted(names) if fnmatchcase(n, member) and not n.endswith("/")]
    return sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


@functools.cache
def _zip(archive: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(archive)  # kept open for the run: one central-directory read per archive


def read_bytes(path: str) -> bytes:
    """Bytes of a resolved path (``archive!member`` read from the zip)."""
    if "!" in path:
        archive, member = path.split("!", 1)
        return _zip(archive).read(member)
    return Path(path).read_bytes()


def load_labelled(entries: list[LabelEntry]) -> tuple[list[LabelledDoc], Counter, list[LabelEntry]]:
    """Read the labelled files; returns the documents, skip counts by reason, and patterns that matched nothing.

    A file listed twice with different labels is a mistake in the set and raises ``ValueError``.
    """
    docs: dict[str, LabelledDoc] = {}
    skips: Counter = Counter()
    missing: list[LabelEntry] = []
    for entry in entries:
        found = resolve(entry.pattern)
        if not found:
            missing.append(entry)
            skips["missing"] += 1
            continue
        for path in _spread(found, entry.limit):
            doc = normalize({"content": read_bytes(path), "path": path}, path, 0, skips)
            if doc is None:  # normalize counted the reason (binary, non_utf8, empty)
                continue
            known = docs.get(path)
            if known is not None and known.label != entry.label:
                raise ValueError(f"{path} is labelled {known.label} (line {known.line_no}) "
                                 f"and {entry.label} (line {entry.line_no})")
            docs.setdefault(path, LabelledDoc(entry.label, doc, entry.line_no))
    return list(docs.values()), skips, missing


def evaluate(docs: list[LabelledDoc], cfg: AutogenConfig) -> EvalResult:
    """Run ``autogen_rule`` on every document and score it against its label."""
    result = EvalResult({name: RuleScore() for name in RULES}, RuleScore())
    for item in docs:
        got = autogen_rule(item.doc, line_stats(item.doc["content"]), cfg)
        expected = None if item.label == HANDWRITTEN else item.label
        if expected is None:
            result.handwritten += 1
            head = leading_lines(item.doc["content"], cfg.header_lines)
            result.handwritten_with_marker_words += bool(MARKER_WORDS.search(head))
        else:
            result.rules[expected].support += 1
            result.overall.support += 1
        if got == expected:
            if got is not None:
                result.rules[got].tp += 1
        else:
            result.errors.append((item.label, got or "none", item.doc["path"]))
            if got is not None:
                result.rules[got].fp += 1
            if expected is not None:
                result.rules[expected].fn += 1
        overall = result.overall
        if expected is not None and got is not None:
            overall.tp += 1
        elif expected is not None:
            overall.fn += 1
        elif got is not None:
            overall.fp += 1
    return result


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_table(result: EvalResult) -> str:
    """The per-rule table, the overall row (any rule vs. none) and the misclassified files."""
    lines = [f"{'rule':<18}{'support':>8}{'TP':>6}{'FP':>6}{'FN':>6}{'precision':>11}{'recall':>8}"]
    rows = [*result.rules.items(), ("overall", result.overall)]
    for name, s in rows:
        lines.append(f"{name:<18}{s.support:>8}{s.tp:>6}{s.fp:>6}{s.fn:>6}"
                     f"{_ratio(s.precision):>11}{_ratio(s.recall):>8}")
    lines.append(f"handwritten files: {result.handwritten} ({result.handwritten_with_marker_words} say "
                 "'generated' / 'do not edit' in their leading lines)")
    lines.append(f"misclassified: {len(result.errors)}")
    lines += [f"  expected {exp:<17} got {got:<17} {path}" for exp, got, path in result.errors]
    return "\n".join(lines)
