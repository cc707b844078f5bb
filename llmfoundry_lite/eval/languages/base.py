"""The shared base of every target language: MultiPL-E's prompt and test layout, and the sandboxed job.

The layout is MultiPL-E's "reworded" HumanEval (``--doctests transform --prompt-terminology
reworded``, the variation its published tables use). The prompt is the Python docstring as
comments (Python terms such as "list" reworded for the language outside the ``>>>`` examples,
each example's call and output rewritten in the language, every line break plus the following
whitespace replaced by a newline and the comment marker, so indentation and blank lines go), then
the signature and its opening brace. A model's completion is its text cut BEFORE the earliest
stop token (what MultiPL-E, and every OpenAI-style client that drops the stop text, keeps). The
program is ``prompt + completion + "\\n" + tests``, as MultiPL-E's evaluator joins them; in the
brace languages whose stop token is the closing brace (C++, Java, Bash) the tests begin with it.
A program exits non-zero unless every test holds.
"""

from __future__ import annotations

import ast
import re
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmfoundry_lite.eval.languages.pymodel import PyProblem, Test, Untranslatable, literal
from llmfoundry_lite.sandbox import Job, SandboxConfig

DOCTEST = re.compile(r">>>.*\n.*\n")
"""A ``>>>`` line and the line after it: what MultiPL-E rewrites as one example."""
TERMS = ("Python", "py", "array", "list", "tuple", "dictionary", "None", "True", "False")
"""The Python words MultiPL-E's terms.csv rewords, in the order it replaces them (plain substrings)."""


@dataclass(frozen=True)
class Translated:
    """One problem in a target language, in the ``--write-problems`` record's terms."""

    task_id: str
    language: str
    prompt: str
    tests: str
    stop_tokens: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    """The original's test statements that are not literal assertions, left out (as source text)."""
    kept: int = 0
    """The original's test assertions the translated tests hold."""

    def program(self, completion: str) -> str:
        """What is compiled and run: the prompt, the completion, a newline, then the tests (MultiPL-E's join)."""
        return f"{self.prompt}{completion}\n{self.tests}"

    def record(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "language": self.language, "prompt": self.prompt, "tests": self.tests,
                "stop_tokens": list(self.stop_tokens)}  # fmt: skip


def reword(text: str, terms: dict[str, str]) -> str:
    """MultiPL-E's terminology rewording of docstring prose: each term replaced as a plain substring,
    in ``TERMS`` order, an article before it fixed ("an array" → "a vector"); later terms also
    match inside earlier replacements (Java's "array" → "array list" → "array array list")."""
    for term in TERMS:
        target = terms[term]
        if term not in text:
            continue
        if f"an {term}" in text and target[0].lower() not in "aeiou":
            text = text.replace(f"an {term}", f"a {target}")
        elif f"a {term}" in text and target[0].lower() in "aeiou":
            text = text.replace(f"a {term}", f"an {target}")
        text = text.replace(term, target)
    return text


class Language(ABC):
    """A target language: ``name``, source ``extension``, MultiPL-E's ``stop_tokens`` and terms, tools."""

    name: str = ""
    extension: str = ""
    stop_tokens: tuple[str, ...] = ()
    terms: dict[str, str] = {}
    """MultiPL-E's terms.csv row: Python word → this language's word."""
    tools: tuple[str, ...] = ()
    """Executables the language needs (looked up on PATH, symlinks resolved)."""
    reference: tuple[str, str] = ("", "")
    """(task_id, completion): a known-good completion of HumanEval/53 (``add``) in MultiPL-E's layout,
    run at start-up to prove that the toolchain and the sandbox work."""

    # --- spelled by each language -------------------------------------------------------
    @abstractmethod
    def example(self, p: PyProblem, args: tuple, expected: Any) -> tuple[str, str]:
        """A docstring example's call and output in this language (Untranslatable when it cannot)."""

    @abstractmethod
    def prompt(self, p: PyProblem) -> str:
        """Header, docstring comment (``self.description(p)``) and signature up to its opening brace."""

    @abstractmethod
    def test_suite(self, p: PyProblem, tests: list[Test]) -> str:
        """The text after ``completion + "\\n"``: every test as a native assert, then the program's end."""

    @abstractmethod
    def job(self, program: str, cfg: SandboxConfig) -> Job:
        """How the sandbox builds and runs ``program`` (steps with this language's limits)."""

    def unsupported(self, p: PyProblem, t: Test) -> str | None:
        """Why this language leaves test ``t`` out (None: it keeps it)."""
        return None

    # --- shared -------------------------------------------------------------------------
    def finish_completion(self, text: str) -> str:
        """Generated ``text`` cut before the earliest stop token (the stop text itself is dropped)."""
        cut = min((at for stop in self.stop_tokens if (at := text.find(stop)) >= 0), default=len(text))
        return text[:cut]

    def binds(self) -> tuple[Path, ...]:
        """Read-only paths the toolchain needs beyond the system dirs the sandbox always binds."""
        return ()

    def missing_tools(self) -> list[str]:
        """The tools this language needs that are not installed."""
        return [tool for tool in self.tools if shutil.which(tool) is None]

    def tool(self, name: str) -> str:
        """The real path of a tool (symlinks such as /etc/alternatives resolved: /etc is not in the sandbox)."""
        found = shutil.which(name)
        if found is None:
            raise FileNotFoundError(f"{name} is not installed; the {self.name} language needs {', '.join(self.tools)}")
        return str(Path(found).resolve())

    def description(self, p: PyProblem, first: str, rest: str) -> str:
        """The docstring as comment lines: reworded prose, rewritten examples, ``first`` before the first
        line and ``rest`` before every other (each line break eats the whitespace after it)."""
        doc, out, pos = p.raw_docstring, [], 0
        for match in DOCTEST.finditer(doc):
            out += [reword(doc[pos : match.start()], self.terms), self.rewrite_example(p, match.group())]
            pos = match.end()
        text = "".join([*out, reword(doc[pos:], self.terms)]).strip()
        return first + re.sub(r"\n\s*", lambda _: "\n" + rest, text) + "\n"

    def rewrite_example(self, p: PyProblem, text: str) -> str:
        """``>>> call`` + output in this language, or ``text`` unchanged when the call is not the entry point
        with literal arguments or the output is not a literal (MultiPL-E drops such a problem)."""
        call, output = text.split("\n")[:2]
        try:
            node = ast.parse(call.strip("> "), mode="eval").body  # MultiPL-E strips the characters ">" and " "
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == p.name):
                return text
            args = tuple(literal(a) for a in node.args)
            if node.keywords or len(args) != len(p.params):
                return text
            spelled = self.example(p, args, literal(ast.parse(output.strip(), mode="eval").body))
        except (SyntaxError, Untranslatable, ArithmeticError, TypeError, ValueError, KeyError, IndexError):
            return text
        return f">>> {spelled[0]}\n    {spelled[1]}\n"

    def translate(self, p: PyProblem) -> Translated:
        """The problem in this language, or Untranslatable (a type or value it cannot spell)."""
        kept, dropped = [], list(p.dropped)
        for t in p.tests:
            why = self.unsupported(p, t)
            if why is None:
                kept.append(t)
            else:
                dropped.append(f"candidate{t.args!r} ≈ {t.expected!r} ({why})")
        if not kept:
            raise Untranslatable(f"no test this language can hold ({'; '.join(dropped)[:120]})")
        return Translated(p.task_id, self.name, self.prompt(p), self.test_suite(p, kept), self.stop_tokens, tuple(dropped),
                          len(kept))  # fmt: skip
