"""The shared base of every target language: prompt, tests and the sandboxed job of one program.

A translated problem follows MultiPL-E's conventions: the Python docstring becomes a comment
above the signature (its ``>>> f(...)`` examples rewritten in the target's syntax when the call
and its output are literals), the signature uses the Python parameter names and the types of
``pymodel``, and the prompt ends at the function's opening brace. A completion closes the
function itself; the ``tests`` follow it and end the program with a non-zero exit status
(a failed native assert) unless every test holds. A subclass says how to spell types, values,
the signature and the tests, and how to build and run the program (``job``).
"""

from __future__ import annotations

import ast
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmfoundry_lite.eval.languages.pymodel import PyProblem, Ty, Untranslatable, literal
from llmfoundry_lite.sandbox import Job, SandboxConfig


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
        """What is compiled and run: the prompt, the completion, then the tests."""
        return f"{self.prompt}{completion}{self.tests}"

    def record(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "language": self.language, "prompt": self.prompt, "tests": self.tests,
                "stop_tokens": list(self.stop_tokens)}  # fmt: skip


class Language(ABC):
    """A target language: ``name``, source ``extension``, MultiPL-E's ``stop_tokens``, tools."""

    name: str = ""
    extension: str = ""
    stop_tokens: tuple[str, ...] = ()
    comment: str = "//"
    closing_stop: str | None = None
    """The stop token that is the function's closing brace: kept in the completion, which closes
    the function itself (MultiPL-E instead starts the tests with it)."""
    tools: tuple[str, ...] = ()
    """Executables the language needs (looked up on PATH, symlinks resolved)."""
    reserved: frozenset[str] = frozenset()
    """Keywords that cannot name a parameter: such a Python name gets a trailing ``_``
    (HumanEval/160's ``operator`` in C++)."""

    # --- spelled by each language -------------------------------------------------------
    @abstractmethod
    def value(self, v: Any, t: Ty) -> str:
        """The literal ``v`` at type ``t`` (Untranslatable when the language cannot spell it)."""

    @abstractmethod
    def signature(self, p: PyProblem) -> str:
        """The function's header up to, not including, its opening brace."""

    @abstractmethod
    def test_suite(self, p: PyProblem) -> str:
        """The text after the completion: every test as a native assert, then the program's end."""

    @abstractmethod
    def job(self, program: str, cfg: SandboxConfig) -> Job:
        """How the sandbox builds and runs ``program`` (steps with this language's limits)."""

    # --- shared -------------------------------------------------------------------------
    def finish_completion(self, text: str) -> str:
        """Generated ``text`` cut at the earliest stop token; the closing-brace stop is kept."""
        found = [(at, stop) for stop in self.stop_tokens if (at := text.find(stop)) >= 0]
        if not found:
            return text
        at, stop = min(found)
        return text[: at + len(stop)].rstrip("\n") + "\n" if stop == self.closing_stop else text[:at]

    def header(self, p: PyProblem) -> str:
        """Text before the docstring comment (includes, imports); none by default."""
        return ""

    def indent(self) -> str:
        """Indentation of the docstring comment and the signature (Java's are inside a class)."""
        return ""

    def param_names(self, p: PyProblem) -> list[str]:
        """The Python parameter names, a keyword of this language suffixed with ``_``."""
        return [f"{n}_" if n in self.reserved else n for n in p.params]

    def call(self, p: PyProblem, args: tuple) -> str:
        """``name(arg, ...)`` with each argument spelled at its parameter's type."""
        return f"{p.name}({', '.join(self.value(a, t) for a, t in zip(args, p.param_types, strict=True))})"

    def example(self, p: PyProblem, args: tuple, expected: Any) -> list[str]:
        """A docstring example as the lines of the rewritten comment (``> call`` then its value)."""
        return [f"> {self.call(p, args)}", self.value(expected, p.return_type)]

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

    def docstring_lines(self, p: PyProblem) -> list[str]:
        return rewrite_examples(p, self)

    def prompt(self, p: PyProblem) -> str:
        pad, lines = self.indent(), self.docstring_lines(p)
        comment = "".join(f"{pad}{self.comment} {line}".rstrip() + "\n" for line in lines)
        return f"{self.header(p)}{comment}{pad}{self.signature(p)} {{\n"

    def translate(self, p: PyProblem) -> Translated:
        """The problem in this language, or Untranslatable (a type or value it cannot spell)."""
        return Translated(p.task_id, self.name, self.prompt(p), self.test_suite(p), self.stop_tokens, tuple(p.dropped),
                          len(p.tests))


def _example_call(p: PyProblem, source: str) -> tuple | None:
    """The literal arguments of ``source`` when it is a call of the entry point, else None."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == p.name) or node.keywords:
        return None
    try:
        args = tuple(literal(a) for a in node.args)
    except (Untranslatable, ArithmeticError, TypeError):
        return None
    return args if len(args) == len(p.params) else None


def rewrite_examples(p: PyProblem, lang: Language) -> list[str]:
    """The docstring's lines with each ``>>> entry(literals)`` + output line rewritten for ``lang``
    (kept verbatim when the call or its output is not a literal the language can spell)."""
    lines = p.docstring.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        args = _example_call(p, stripped[4:]) if stripped.startswith(">>> ") else None
        if args is not None and i + 1 < len(lines) and lines[i + 1].strip():
            try:
                expected = literal(ast.parse(lines[i + 1].strip(), mode="eval").body)
                rewritten = lang.example(p, args, expected)
            except (SyntaxError, Untranslatable, ArithmeticError, TypeError, ValueError, KeyError):
                rewritten = None
            if rewritten is not None:
                pad = line[: len(line) - len(line.lstrip())]
                out += [pad + r for r in rewritten]
                i += 2
                continue
        out.append(line)
        i += 1
    return out
