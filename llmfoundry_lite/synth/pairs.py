"""One document → its documented functions → pairs, by language (the per-document part of synthesis).

Python through ``ast`` (``extract.py``, tests mined by ``mining.py``); JavaScript / TypeScript /
Java through tree-sitter (``extract_treesitter.py``), without tests. Every function found is kept or
dropped for one named reason (``checks.py``); a document that gives no functions says why
(``DOCUMENT_SKIPS``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from llmfoundry_lite.synth.checks import drop_reason, source_drop_reason
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.extract import Function, extract_functions, format_prompt, parse_module
from llmfoundry_lite.synth.extract_java import extract_java
from llmfoundry_lite.synth.extract_js import extract_javascript, extract_typescript
from llmfoundry_lite.synth.extract_treesitter import SourceFunction, format_source_prompt
from llmfoundry_lite.synth.mining import ModuleAsserts, mine_tests
from llmfoundry_lite.synth.split import group_of
from llmfoundry_lite.synth.verify import untestable

LANGUAGE = "Python"
CORPUS_REASONS = {
    "decontaminated": "the code holds a benchmark text (decontam options)",
    "near_duplicate": "estimated Jaccard similarity >= near_dup_threshold with an earlier kept pair",
}
DOCUMENT_SKIPS = {
    "unsupported_language": "the document's language is none of Python, JavaScript, TypeScript, Java",
    "language_not_selected": "a supported language left out of the ``languages`` option",
    "syntax_error": "ast.parse fails (Python 2, broken or truncated files)",
    "too_deep": "nesting too deep for the parser (RecursionError / MemoryError)",
}
"""Why a document gave no functions; the readers' own skip reasons (``null_content``, ...) are added as they come."""


@dataclass(frozen=True)
class Pair:
    """One kept (prompt, response) pair and where it came from."""

    prompt: str
    response: str
    program: str
    """Code block + response: what decontamination and near-dedup compare, and what the tests run against."""
    source_id: str
    """``<document id>#<qualname>:<def line>``."""
    group: str
    """Split group (``repo:<name>`` or ``doc:<id>``)."""
    tests: tuple[str, ...] = ()
    """The mined tests' programs (``mining.py``), doctest first; kept in the row even when not run."""
    test_kinds: tuple[str, ...] = ()
    """``doctest`` / ``assert`` per test."""
    discarded_tests: tuple[str, ...] = ()
    """Reasons (``mining.DISCARD_REASONS``) of doctests/asserts found but not usable as tests."""
    untestable: str | None = "no_tests"
    """Why the tests cannot run (``verify.UNTESTED_REASONS``), None when they can."""
    origin: str = "untested"
    """``verified`` once its tests passed in the sandbox, else ``untested``."""
    language: str = LANGUAGE
    """The document's language (``Python``, ``JavaScript``, ``TypeScript``, ``Java``)."""

    def row(self) -> dict:
        return {"prompt": self.prompt, "response": self.response, "tests": list(self.tests),
                "source_id": self.source_id, "language": self.language, "origin": self.origin}


def _pair(doc: dict, fn: Function, module: ModuleAsserts, cfg: SynthConfig) -> Pair:
    tests, discarded = mine_tests(fn, module)
    return Pair(prompt=format_prompt(fn), response=fn.body, program=fn.program,
                source_id=f"{doc['id']}#{fn.qualname}:{fn.lineno}", group=group_of(doc, cfg.split_by),
                tests=tuple(t.source for t in tests), test_kinds=tuple(t.kind for t in tests),
                discarded_tests=discarded, untestable=untestable(fn, tests, frozenset(cfg.unsafe_modules)))


def _python_pairs(doc: dict, cfg: SynthConfig, dropped: Counter) -> tuple[list[Pair], int] | str:
    try:
        tree = parse_module(doc["content"])
    except (SyntaxError, ValueError):  # IndentationError is a SyntaxError; ValueError: null bytes
        return "syntax_error"
    except (RecursionError, MemoryError):
        return "too_deep"
    functions = extract_functions(doc["content"], tree)
    module = ModuleAsserts.of(tree)
    pairs = []
    for fn in functions:
        reason = drop_reason(fn, cfg)
        if reason is not None:
            dropped[reason] += 1
            continue
        pairs.append(_pair(doc, fn, module, cfg))
    return pairs, len(functions)


SOURCE_EXTRACTORS: dict[str, Callable[[str, str], list[SourceFunction]]] = {
    "JavaScript": extract_javascript, "TypeScript": extract_typescript, "Java": extract_java,
}
"""Extractor per tree-sitter language (``extract_treesitter.py``); called with the content and the path (``.tsx``)."""


def _source_pairs(doc: dict, cfg: SynthConfig, dropped: Counter) -> tuple[list[Pair], int]:
    """JavaScript / TypeScript / Java: no tests are mined, so every pair is ``language_not_runnable``."""
    functions = SOURCE_EXTRACTORS[doc["lang"]](doc["content"], doc.get("path") or "")
    pairs = []
    for fn in functions:
        reason = source_drop_reason(fn, cfg)
        if reason is not None:
            dropped[reason] += 1
            continue
        pairs.append(Pair(prompt=format_source_prompt(fn), response=fn.body, program=fn.program,
                          source_id=f"{doc['id']}#{fn.qualname}:{fn.lineno}", group=group_of(doc, cfg.split_by),
                          untestable="language_not_runnable", language=doc["lang"]))
    return pairs, len(functions)


DOCUMENT_PAIRS: dict[str, Callable[[dict, SynthConfig, Counter], tuple[list[Pair], int] | str]] = {
    "Python": _python_pairs, "JavaScript": _source_pairs, "TypeScript": _source_pairs, "Java": _source_pairs,
}
"""How each supported language's documents become pairs; every other language is ``unsupported_language``."""


def document_pairs(doc: dict, cfg: SynthConfig, dropped: Counter) -> tuple[list[Pair], int] | str:
    """Kept pairs of one document (tests mined) and how many functions it had; or why the document was skipped.

    Drop reasons of its functions are added to ``dropped``."""
    handler = DOCUMENT_PAIRS.get(doc["lang"])
    if handler is None:
        return "unsupported_language"
    return handler(doc, cfg, dropped) if doc["lang"] in cfg.languages else "language_not_selected"

