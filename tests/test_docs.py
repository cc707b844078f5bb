"""README.md and docs/ stay true to the repository: links resolve, named paths exist, page one stays short.

Checked for README.md and every docs/*.md:

(a) every relative markdown link resolves, from the file that holds it (``#anchors`` stripped;
    ``http(s)://`` and ``mailto:`` ignored);
(b) every path named in code (inline backticks or fenced blocks) or as a link target whose first
    component is a top-level entry of the repository exists, resolved from the repository root
    (a trailing ``:line`` is stripped; globs and placeholders holding ``*``, ``<``, ``{`` or ``...``
    are skipped). Paths of run outputs (``data/...``, ``runs/...``) are not repository files and are
    not checked;
(c) README.md is at most ``README_MAX_BYTES``;
(d) every page in docs/ is linked from README.md or docs/README.md.

Each failure lists every offending path with its file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_BYTES = 15_000

TOP_LEVEL_DIRS = frozenset({"llmfoundry_lite", "data_prep", "eval", "scripts", "benchmarks", "yamls", "docs", "tests"})
TOP_LEVEL_FILES = frozenset(
    {"train.py", "Makefile", "pyproject.toml", "requirements.lock", "requirements.in", "README.md"}
)
TOP_LEVEL = TOP_LEVEL_DIRS | TOP_LEVEL_FILES
"""The repository's tracked top-level entries: a named path starting with one of them must exist."""

PLACEHOLDER_MARKS = ("*", "<", "{", "...", "…")
NOT_PATHS = frozenset({"docs/s", "docs/s/core"})
"""Rate units printed by benchmark outputs (documents per second) that read like paths under docs/."""
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?!`)((?:(?!\n\s*\n).)+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[(?:[^\]\n]|\n(?!\s*\n))*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
TOKEN = re.compile(r"[^\s`'\"(),;=\[\]|]+")
LINE_SUFFIX = re.compile(r":\d+(?:-\d+)?$")


@dataclass(frozen=True)
class Mention:
    """A path named in a markdown file: where, and how (``link`` target or ``code`` token)."""

    file: Path
    line: int
    text: str
    kind: str

    def where(self) -> str:
        name = self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file
        return f"{name}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every markdown page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def split_fenced(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The text with fenced blocks blanked (line numbers kept), and the fenced lines with their numbers."""
    prose: list[str] = []
    fenced: list[tuple[int, str]] = []
    inside = False
    for number, line in enumerate(text.split("\n"), start=1):
        if FENCE.match(line):
            inside = not inside
            prose.append("")
        elif inside:
            fenced.append((number, line))
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), fenced


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def mentions(path: Path) -> list[Mention]:
    """Every link target and every path-like code token of one markdown file."""
    prose, fenced = split_fenced(path.read_text(encoding="utf-8"))
    found: list[Mention] = []
    blanked = prose
    for match in CODE_SPAN.finditer(prose):
        for token in TOKEN.finditer(match.group(2)):
            found.append(Mention(path, line_of(prose, match.start(2) + token.start()), token.group(), "code"))
        blanked = blanked[: match.start()] + re.sub(r"[^\n]", " ", match.group(0)) + blanked[match.end() :]
    for match in LINK.finditer(blanked):
        found.append(Mention(path, line_of(blanked, match.start(1)), match.group(1), "link"))
    for number, line in fenced:
        found += [Mention(path, number, token.group(), "code") for token in TOKEN.finditer(line)]
    return sorted(found, key=lambda mention: mention.line)


def is_external(target: str) -> bool:
    """A URL (``https://``, ``s3://``, ...) or a ``mailto:`` address: nothing on this disk."""
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", target)) or target.startswith(("mailto:", "//"))


def repo_path(token: str) -> str | None:
    """The repository path a code token or link target names, or None when it names none."""
    if is_external(token) or any(mark in token for mark in PLACEHOLDER_MARKS):
        return None
    token = token.split("#", 1)[0].rstrip(".,:;!?")
    token = LINE_SUFFIX.sub("", token)
    if token.startswith("./"):
        token = token[2:]
    first = token.split("/", 1)[0]
    if first not in TOP_LEVEL or token in NOT_PATHS:
        return None
    if "/" not in token and token not in TOP_LEVEL_FILES:
        return None  # a bare word such as `tests` or `eval` is not a path
    return token


def broken_links(path: Path) -> list[str]:
    """(a) relative link targets that do not exist next to the file that links them."""
    problems = []
    for mention in mentions(path):
        if mention.kind != "link" or is_external(mention.text) or mention.text.startswith("#"):
            continue
        target = mention.text.split("#", 1)[0]
        if not (path.parent / target).exists():
            problems.append(f"{mention.where()}: link target {mention.text!r} does not exist")
    return problems


def missing_repo_paths(path: Path) -> list[str]:
    """(b) named repository paths (code tokens, link targets) that do not exist from the repository root."""
    problems, seen = [], set()
    for mention in mentions(path):
        name = repo_path(mention.text)
        if name is None or (ROOT / name).exists() or (mention.line, name) in seen:
            continue
        seen.add((mention.line, name))
        problems.append(f"{mention.where()}: {name} does not exist in the repository")
    return problems


def linked_pages(path: Path) -> set[Path]:
    """The files a markdown file links to, resolved."""
    return {
        (path.parent / m.text.split("#", 1)[0]).resolve()
        for m in mentions(path)
        if m.kind == "link" and not is_external(m.text) and not m.text.startswith("#")
    }


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_named_repository_paths_exist(path: Path) -> None:
    problems = missing_repo_paths(path)
    assert not problems, "paths named in the docs that the repository lacks:\n" + "\n".join(problems)


def test_readme_is_page_one_sized() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size:,} bytes; page one holds at most {README_MAX_BYTES:,}"


def test_every_docs_page_is_linked() -> None:
    reachable = linked_pages(README) | linked_pages(DOCS / "README.md")
    orphans = [p.relative_to(ROOT) for p in sorted(DOCS.glob("*.md")) if p.resolve() not in reachable]
    assert not orphans, "docs pages linked from neither README.md nor docs/README.md: " + ", ".join(map(str, orphans))


def test_checks_can_fail(tmp_path: Path) -> None:
    """The checks above catch what they are for (a page of bogus names, outside the repository)."""
    page = tmp_path / "page.md"
    page.write_text(
        "See [gone](missing.md#x), [web](https://example.com), [mail](mailto:a@b.c), "
        "`llmfoundry_lite/no_such.py:12` and [a\n"
        "two-line link](also_missing.md).\n"
        "```\n$ python scripts/no_such_script.py --out data/whatever\n```\n"
        "`yamls/<name>.yaml`, `benchmarks/bench_*.py`, `runs/code-tiny`, `tests`, `Makefile` and `train.py:9` pass.\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        f"{page}:1: link target 'missing.md#x' does not exist",
        f"{page}:2: link target 'also_missing.md' does not exist",
    ]
    assert missing_repo_paths(page) == [
        f"{page}:1: llmfoundry_lite/no_such.py does not exist in the repository",
        f"{page}:4: scripts/no_such_script.py does not exist in the repository",
    ]
    named = {repo_path(m.text) for m in mentions(page)} - {None}
    assert named == {"llmfoundry_lite/no_such.py", "scripts/no_such_script.py", "Makefile", "train.py"}
