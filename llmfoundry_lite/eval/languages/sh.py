"""Bash (``sh``): MultiPL-E's prompt and ``[[ $(candidate ...) = "..." ]]`` tests, one ``bash`` run.

As MultiPL-E writes it: every value is a double-quoted string. Scalars are Python's repr (``2.5``),
booleans ``true``/``false``, None ``None``, strings with ``\\ " $ !`` backslash-escaped and a newline
as the two characters ``\\n``; a list or tuple is space-separated, a list of lists joins its rows
with the two characters ``\\n`` (inside double quotes bash keeps them as they are), a dict is
``key,value`` rows joined the same way. A list element with whitespace cannot be spelled: that
test is left out (MultiPL-E skips the test case too). The prompt is ``#!/bin/bash``, the docstring
as ``#`` comments (an example's output is the Python repr of the spelled value, as MultiPL-E
prints it), ``#`` and one ``# $i is ...`` line per parameter, then ``name() {``. The tests begin
with the function's ``}``, define ``candidate`` and run every test under ``set -e`` (``bash -n``
first: a syntax error is ``failed: compile error``). Approximate float tests (which MultiPL-E
cannot translate) compute ``|got - expected|`` with awk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmfoundry_lite.eval.languages.base import Language
from llmfoundry_lite.eval.languages.js import number
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Test, Ty, Untranslatable
from llmfoundry_lite.sandbox import Job, SandboxConfig, Step, rlimit_spec

DESCRIPTIONS = {"int": "an integer", "float": "a floating point", "str": "a string", "bool": "a $bool",
                "tuple": "a space-separated list", "dict": "a two column CSV in key,value order",
                "optional": "an argument"}  # fmt: skip
WHITESPACE = (" ", "\t", "\n", "\r")


def quoted(text: str) -> str:
    return text if len(text) > 1 and text[0] == text[-1] == '"' else f'"{text}"'


def unquoted(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def scalar(v: Any) -> str:
    """A scalar as MultiPL-E's bash literal: quoted, strings escaped."""
    if isinstance(v, bool):
        return quoted(str(v).lower())
    if v is None:
        return quoted("None")
    if isinstance(v, str):
        for char, escaped in (("\\", "\\\\"), ("\n", "\\n"), ('"', '\\"'), ("$", "\\$"), ("!", "\\!")):
            v = v.replace(char, escaped)
        return quoted(v)
    return quoted(repr(v))


def spelled(v: Any) -> Any:
    """The value with every scalar quoted, containers kept (the form MultiPL-E prints in examples)."""
    if isinstance(v, (list, tuple)):
        items = [spelled(x) for x in v]
        if any(isinstance(x, str) and any(w in x for w in WHITESPACE) for x in items):
            raise Untranslatable("a list element holds whitespace")
        return items
    if isinstance(v, dict):
        pairs = {spelled(k): spelled(x) for k, x in v.items()}
        if any(any(w in s for w in WHITESPACE) for kv in pairs.items() for s in kv if isinstance(s, str)):
            raise Untranslatable("a dict entry holds whitespace")
        return pairs
    return scalar(v)


def text(v: Any) -> str:
    """A spelled value as one bash word: rows joined by the two characters ``\\n``, items by spaces."""
    if isinstance(v, list):
        if not v:
            return '""'
        if all(isinstance(x, dict) for x in v) or all(isinstance(y, list) for x in v for y in x):
            raise Untranslatable("a list of dicts or of lists of lists")
        sep = "\\n" if all(isinstance(x, list) for x in v) else " "
        return quoted(sep.join(unquoted(text(x)) for x in v))
    if isinstance(v, dict):
        if not all(isinstance(x, str) for x in v.values()):
            raise Untranslatable("a nested dict")
        return quoted("\\n".join(f"{unquoted(k)},{unquoted(x)}" for k, x in v.items()))
    return v


class Bash(Language):
    name = "sh"
    extension = "sh"
    stop_tokens = ("\n}",)
    terms = {"Python": "Bash", "py": "sh", "array": "array", "list": "list", "tuple": "list", "dictionary": "CSV",
             "None": "None", "True": "true", "False": "false"}  # fmt: skip
    tools = ("bash",)
    reference = ("HumanEval/53", "    echo $(($1 + $2))")

    def call(self, name: str, args: tuple) -> str:
        return "$(" + name + " " + " ".join(text(spelled(a)) for a in args) + ")"

    def example(self, p: PyProblem, args: tuple, expected: Any) -> tuple[str, str]:
        return self.call(p.name, args), str(spelled(expected))

    def describe(self, t: Ty) -> str:
        if t.kind == "list":
            nested = t.args[0].kind in ("list", "tuple", "dict", "optional")
            return "a newline-separated, space-separated list" if nested else "a space-separated list"
        return DESCRIPTIONS[t.kind]

    def prompt(self, p: PyProblem) -> str:
        params = "".join(f"# ${i} is {self.describe(t)}\n" for i, t in enumerate(p.param_types, 1))
        return f"#!/bin/bash\n{self.description(p, '# ', '# ')}{'#' + chr(10) + params if params else ''}{p.name}() {{\n"

    def unsupported(self, p: PyProblem, t: Test) -> str | None:
        try:
            self.assertion(t)
        except Untranslatable as why:
            return str(why)
        return None

    def assertion(self, t: Test) -> str:
        call = self.call("candidate", t.args)
        if t.tolerance is None:
            return f"    [[ {call} = {text(spelled(t.expected))} ]]"
        check = f"BEGIN {{ d = got - {number(t.expected)}; print (d < {number(t.tolerance)} && -d < {number(t.tolerance)}) }}"
        return f"    [[ $(awk -v got=\"{call}\" '{check}') = 1 ]]"

    def test_suite(self, p: PyProblem, tests: list[Test]) -> str:
        lines = ["}", "", "candidate() {", f'    {p.name} "$@"', "}", "", "set -e", "run_test() {"]
        return "\n".join([*lines, *(self.assertion(t) for t in tests), "}", "", "run_test"])

    def binds(self) -> tuple[Path, ...]:
        """/etc/alternatives: Debian reaches awk, editors and more through its symlinks."""
        return tuple(p for p in (Path("/etc/alternatives"),) if p.is_dir())

    def job(self, program: str, cfg: SandboxConfig) -> Job:
        limits = rlimit_spec(cfg, cfg.timeout)
        check = Step((self.tool("bash"), "-n", "program.sh"), "compile", cfg.timeout, limits)  # syntax errors
        run = Step((self.tool("bash"), "program.sh"), "run", cfg.timeout, limits)
        return Job({"program.sh": program.encode("utf-8", "surrogatepass")}, (check, run))
