"""Bash (``sh``): MultiPL-E's conventions, values as text, one ``bash`` run.

Arguments arrive as strings: a list is space-separated, a list of lists is one line per row,
a dict is one ``key,value`` line per item, booleans are ``true``/``false``, None is the empty
string, floats are Python's spelling (``2.5``). The function prints its result; each test
compares that output with ``[[ ... = ... ]]`` under ``set -e``, so the first mismatch exits
non-zero (``bash -n`` first: a syntax error is ``failed: compile error``); approximate float tests compute ``|got - expected|`` with awk. Strings that would
not survive this encoding (a space inside a list element) are refused as untranslatable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmfoundry_lite.eval.languages.base import Language
from llmfoundry_lite.eval.languages.js import number
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Ty, Untranslatable
from llmfoundry_lite.sandbox import Job, SandboxConfig, Step, rlimit_spec

DESCRIPTIONS = {"int": "an integer", "float": "a floating point", "str": "a string", "bool": "a boolean ('true'/'false')",
                "list": "a space-separated list", "tuple": "a space-separated list", "dict": "a newline-separated list of key,value pairs"}  # fmt: skip


def quote(text: str) -> str:
    """A single-quoted bash word: no expansion happens inside."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


class Bash(Language):
    name = "sh"
    extension = "sh"
    stop_tokens = ("\n}",)
    closing_stop = "\n}"
    comment = "#"
    tools = ("bash",)

    def text(self, v: Any, t: Ty, depth: int = 0) -> str:
        """The value as the text the function receives or prints."""
        if t.kind == "optional":
            return "" if v is None else self.text(v, t.args[0], depth)
        if t.kind == "bool":
            return "true" if v else "false"
        if t.kind == "int":
            return str(int(v))
        if t.kind == "float":
            return number(v)
        if t.kind == "str":
            if depth and (" " in v or "\n" in v):
                raise Untranslatable(f"list element {v!r} holds a separator")
            return v
        if t.kind in ("list", "tuple"):
            types = t.args if t.kind == "tuple" else (t.args[0],) * len(v)
            if depth >= 1:
                return " ".join(self.text(x, xt, 2) for x, xt in zip(v, types, strict=True))
            sep = "\n" if any(x.kind in ("list", "tuple") for x in types) else " "
            return sep.join(self.text(x, xt, 1) for x, xt in zip(v, types, strict=True))
        if t.kind == "dict" and depth == 0:
            return "\n".join(f"{self.text(k, t.args[0], 2)},{self.text(x, t.args[1], 2)}" for k, x in v.items())
        raise Untranslatable(f"no bash text for type {t} at nesting depth {depth}")

    def value(self, v: Any, t: Ty) -> str:
        return quote(self.text(v, t))

    def call(self, p: PyProblem, args: tuple) -> str:
        return " ".join([p.name, *(self.value(a, t) for a, t in zip(args, p.param_types, strict=True))])

    def example(self, p: PyProblem, args: tuple, expected: Any) -> list[str]:
        return [f"$ {self.call(p, args)}", *self.text(expected, p.return_type).split("\n")]

    def header(self, p: PyProblem) -> str:
        return "#!/bin/bash\n"

    def docstring_lines(self, p: PyProblem) -> list[str]:
        params = [f"${i} is {DESCRIPTIONS.get(t.args[0].kind if t.kind == 'optional' else t.kind, 'a value')}"
                  for i, t in enumerate(p.param_types, 1)]  # fmt: skip
        return [*super().docstring_lines(p), *([""] if params else []), *params]

    def signature(self, p: PyProblem) -> str:
        return f"{p.name}()"

    def test_suite(self, p: PyProblem) -> str:
        lines = ["", "candidate() {", f'    {p.name} "$@"', "}", "", "set -e", "run_test() {"]
        for t in p.tests:
            call = "candidate" + self.call(p, t.args)[len(p.name):]
            if t.tolerance is None:
                lines.append(f"    [[ $({call}) = {self.value(t.expected, p.return_type)} ]]")
            else:  # bash has no floats: awk computes |got - expected| < tolerance
                check = f"BEGIN {{ d = got - {number(t.expected)}; print (d < {number(t.tolerance)} && -d < {number(t.tolerance)}) }}"
                lines.append(f'    [[ $(awk -v got="$({call})" {quote(check)}) = 1 ]]')
        return "\n".join([*lines, "}", "", "run_test", ""])

    def binds(self) -> tuple[Path, ...]:
        """/etc/alternatives: Debian reaches awk, editors and more through its symlinks."""
        return tuple(p for p in (Path("/etc/alternatives"),) if p.is_dir())

    def job(self, program: str, cfg: SandboxConfig) -> Job:
        limits = rlimit_spec(cfg, cfg.timeout)
        check = Step((self.tool("bash"), "-n", "program.sh"), "compile", cfg.timeout, limits)  # syntax errors
        run = Step((self.tool("bash"), "program.sh"), "run", cfg.timeout, limits)
        return Job({"program.sh": program.encode("utf-8", "surrogatepass")}, (check, run))
