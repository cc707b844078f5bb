"""JavaScript (``js``, node): MultiPL-E's prompt, ``assert.deepEqual`` tests, one ``node`` run.

As MultiPL-E writes it: the prompt ends ``function name(params){`` (no space before the brace)
and the first comment line has no space after ``//``; no stop token is the closing brace, so the
completion closes the function itself and the tests begin with ``const assert = require('node:assert');``.
Values: numbers as Python's repr, strings in double quotes (escaped here, where MultiPL-E pastes
them raw: see ``string``), None as ``undefined``, lists and tuples as arrays, dicts as objects.
``assert.deepEqual`` is loose (``1`` equals ``"1"``, ``null`` equals ``undefined``), as in
MultiPL-E. A syntax error is ``failed: compile error`` as in compiled languages (see
``CHECK_THEN_RUN``). node's V8 starts ~7 threads, so the process limit is raised to 64; its
address space fits in 2 GiB.
"""

from __future__ import annotations

import json
import math
from typing import Any

from llmfoundry_lite.eval.languages.base import Language
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Test, Untranslatable
from llmfoundry_lite.sandbox import Job, SandboxConfig, Step, rlimit_spec

MEMORY_MB = 2048
PROCESSES = 64
COMPILE_ERROR_STATUS = 97
CHECK_THEN_RUN = (
    'const fs = require("fs"), path = require("path"), vm = require("vm"); const file = process.argv[1];'
    'try { vm.compileFunction(fs.readFileSync(file, "utf8"), ["exports", "require", "module", "__filename", '
    '"__dirname"], {filename: file}); } catch (e) { console.error(String(e)); process.exit(97); }'
    "require(path.resolve(file));"
)
"""One node process: parse the file as a CommonJS module body (a syntax error exits 97, i.e.
``failed: compile error``), then run it; half the cost of ``node --check`` and a second node."""
STARTUP_S = 1.0
"""Extra wall-clock seconds for node's start-up (~0.05 s idle; more on a busy machine)."""


def number(v: Any) -> str:
    """A float literal every C-like language reads (``2.0``, ``1e-06``); inf and nan are refused."""
    f = float(v)
    if not math.isfinite(f):
        raise Untranslatable(f"non-finite float {f}")
    return repr(f)


def string(s: str) -> str:
    """``"s"``: MultiPL-E's double-quoted spelling, with ``"``, ``\\`` and control characters escaped
    (MultiPL-E escapes none of them in JS, so its tests with such strings do not parse)."""
    plain = f'"{s}"'
    return plain if plain == json.dumps(s, ensure_ascii=False) else json.dumps(s, ensure_ascii=False)


class JavaScript(Language):
    name = "js"
    extension = "js"
    stop_tokens = ("\nfunction ", "\n/*", "\n//", "\nconsole.log")
    terms = {"Python": "JavaScript", "py": "js", "array": "array", "list": "array", "tuple": "array",
             "dictionary": "object", "None": "undefined", "True": "true", "False": "false"}  # fmt: skip
    tools = ("node",)
    reference = ("HumanEval/53", "  return x + y;\n}\n")

    def value(self, v: Any) -> str:
        """A Python literal as MultiPL-E spells it in JavaScript (by the value, not the declared type)."""
        if isinstance(v, bool):
            return "true" if v else "false"
        if v is None:
            return "undefined"
        if isinstance(v, str):
            return string(v)
        if isinstance(v, float):
            return number(v)
        if isinstance(v, int):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(self.value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{self.value(k)}: {self.value(x)}" for k, x in v.items()) + "}"
        raise Untranslatable(f"no JavaScript spelling for {type(v).__name__}")

    def call(self, name: str, args: tuple) -> str:
        return f"{name}({', '.join(self.value(a) for a in args)})"

    def example(self, p: PyProblem, args: tuple, expected: Any) -> tuple[str, str]:
        return self.call(p.name, args), self.value(expected)

    def prompt(self, p: PyProblem) -> str:
        return f"{self.description(p, '//', '// ')}function {p.name}({', '.join(p.params)}){{\n"

    def test_suite(self, p: PyProblem, tests: list[Test]) -> str:
        lines = ["const assert = require('node:assert');\n", "", "function test() {", f"  let candidate = {p.name};"]
        for t in tests:
            call = self.call("candidate", t.args)
            if t.tolerance is None:
                lines.append(f"  assert.deepEqual({call},{self.value(t.expected)});")
            else:  # MultiPL-E has no approximate tests: it drops such problems
                lines.append(f"  assert.ok(Math.abs({call} - {number(t.expected)}) < {number(t.tolerance)});")
        return "\n".join([*lines, "}", "", "test();"])

    def job(self, program: str, cfg: SandboxConfig) -> Job:
        timeout = cfg.timeout + STARTUP_S
        limits = rlimit_spec(cfg, timeout, max(cfg.memory_mb, MEMORY_MB), max(cfg.max_processes, PROCESSES))
        run = Step((self.tool("node"), "-e", CHECK_THEN_RUN, "program.js"), "run", timeout, limits,
                   compile_error_status=COMPILE_ERROR_STATUS)  # fmt: skip
        return Job({"program.js": program.encode("utf-8", "surrogatepass")}, (run,))
