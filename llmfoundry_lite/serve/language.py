"""The language of a completion, for acceptance rates broken down by language.

An editor knows the file's language and can say so (``language``, an extension field of the
completion request, as vLLM takes extra fields): The Stack's names, lower-cased (``python``,
``c++``, ``javascript``), or a file name, whose extension decides (``corpus.languages``). Without
it the prompt and suffix are guessed from: a ``#!`` line, then a few unmistakable constructs per
language; a guess that finds none of them is ``unknown`` rather than a wrong label.
"""

from __future__ import annotations

import re

from llmfoundry_lite.corpus.languages import EXTENSIONS, language_from_path, language_from_shebang

UNKNOWN = "unknown"
MAX_LANGUAGE_CHARS = 64
"""A longer ``language`` value is refused: it is a label, not content."""

KNOWN = sorted({name.lower() for name in EXTENSIONS.values()})
"""Language names a client may send (The Stack's, lower-cased)."""

_SIGNS: list[tuple[str, re.Pattern[str]]] = [
    ("python", re.compile(r"^\s*(def \w+\(.*\).*:|class \w+.*:|from [\w.]+ import |import \w+$|elif |"
                          r"if __name__ == )", re.M)),
    ("c++", re.compile(r"^\s*(#include\s*<(iostream|vector|string|map|algorithm)>|using namespace std|"
                       r"template\s*<)|std::", re.M)),
    ("c", re.compile(r"^\s*#include\s*<(stdio|stdlib|string|unistd)\.h>", re.M)),
    ("java", re.compile(r"^\s*(public |private |protected )?(static )?(final )?class \w+.*\{|System\.out\.|"
                        r"^\s*import java\.", re.M)),
    ("go", re.compile(r"^\s*(package \w+$|func (\(\w+ \*?\w+\) )?\w+\(.*\).*\{)", re.M)),
    ("rust", re.compile(r"^\s*(pub )?fn \w+.*(->|\{)|let mut |^\s*use \w+::", re.M)),
    ("javascript", re.compile(r"^\s*(function \w*\(|const \w+ = (\(|require\(|async )|module\.exports|"
                              r"console\.log\()", re.M)),
    ("shell", re.compile(r"^\s*(echo \"|fi$|done$|esac$|then$)", re.M)),
]
"""(language, constructs only that language writes), tried in order: C++ before C, since C++
includes C headers too; the first language with a match wins."""


def normalise(language: str) -> str:
    """A client's ``language``: a language name (any case) or a file name whose extension decides."""
    value = language.strip()
    if value.lower() in KNOWN:
        return value.lower()
    by_path = language_from_path(value)
    if by_path is not None:
        return by_path.lower()
    return UNKNOWN


def guess(prompt: str, suffix: str | None = None) -> str:
    """The language the prompt (and suffix) are written in, or ``unknown``."""
    first = prompt.lstrip().split("\n", 1)[0]
    by_shebang = language_from_shebang(first)
    if by_shebang is not None:
        return by_shebang.lower()
    text = prompt + "\n" + (suffix or "")
    for language, sign in _SIGNS:
        if sign.search(text):
            return language
    return UNKNOWN
