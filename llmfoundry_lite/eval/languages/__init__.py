"""HumanEval translated from its Python to other languages (MultiPL-E's conventions).

``LANGUAGES`` maps a ``--language`` name to its translator + toolchain; ``translate_all``
translates every problem it can and lists the others with the reason. Python itself is not
here: it is the original problems, run as they are (``problems.check_program``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmfoundry_lite.eval.languages.base import Language, Translated
from llmfoundry_lite.eval.languages.cpp import Cpp
from llmfoundry_lite.eval.languages.java import Java
from llmfoundry_lite.eval.languages.js import JavaScript
from llmfoundry_lite.eval.languages.pymodel import Untranslatable
from llmfoundry_lite.eval.languages.pyparse import parse_problem
from llmfoundry_lite.eval.languages.sh import Bash

LANGUAGES: dict[str, Language] = {"js": JavaScript(), "cpp": Cpp(), "java": Java(), "sh": Bash()}


@dataclass
class Coverage:
    """Which problems one language has, and why the others are missing."""

    language: str
    translated: dict[str, Translated] = field(default_factory=dict)
    untranslated: dict[str, str] = field(default_factory=dict)
    """task_id → reason."""

    def summary(self) -> str:
        total = len(self.translated) + len(self.untranslated)
        dropped = sum(len(t.dropped) for t in self.translated.values())
        lines = [f"{self.language}: {len(self.translated)}/{total} problems translated "
                 f"({dropped} non-literal test statements dropped from translated problems)"]  # fmt: skip
        lines += [f"  untranslated {task}: {reason}" for task, reason in self.untranslated.items()]
        return "\n".join(lines)


def get_language(name: str) -> Language:
    if name not in LANGUAGES:
        raise ValueError(f"unknown language {name!r}; choose from {sorted(LANGUAGES)}")
    return LANGUAGES[name]


def translate_all(problems: dict[str, dict], language: str) -> Coverage:
    """Every problem in ``language``, in input order; the untranslatable ones with their reason."""
    lang = get_language(language)
    coverage = Coverage(language)
    for task_id, problem in problems.items():
        try:
            coverage.translated[task_id] = lang.translate(parse_problem(problem))
        except Untranslatable as reason:
            coverage.untranslated[task_id] = str(reason)
    return coverage
