"""JavaScript (``js``, node): MultiPL-E's layout, ``assert.deepStrictEqual`` tests, one ``node`` run.

A syntax error is ``failed: compile error`` as in compiled languages (see ``CHECK_THEN_RUN``). Numbers are JS numbers (int and float alike), ``None`` is ``null``, lists and tuples are
arrays, dicts with string keys are objects. Strict deep equality, so ``"1"`` is not ``1`` and
``0`` is not ``false``. node's V8 starts ~7 threads, so the process limit is raised to 64;
its address space fits in 2 GiB.
"""

from __future__ import annotations

import json
import math
from typing import Any

from llmfoundry_lite.eval.languages.base import Language
from llmfoundry_lite.eval.languages.pymodel import PyProblem, Ty, Untranslatable
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


class JavaScript(Language):
    name = "js"
    extension = "js"
    stop_tokens = ("\nfunction ", "\n/*", "\n//", "\nconsole.log")
    reserved = frozenset(
        "break case catch class const continue debugger default delete do else enum export extends "
        "false finally for function if import in instanceof new null return super switch this throw "
        "true try typeof var void while with yield let static implements interface package private "
        "protected public await arguments eval"
        .split()
    )
    tools = ("node",)

    def value(self, v: Any, t: Ty) -> str:
        if t.kind == "optional":
            return "null" if v is None else self.value(v, t.args[0])
        if t.kind == "bool":
            return "true" if v else "false"
        if t.kind == "int":
            return str(int(v))
        if t.kind == "float":
            return number(v)
        if t.kind == "str":
            return json.dumps(v)
        if t.kind in ("list", "tuple"):
            types = t.args if t.kind == "tuple" else (t.args[0],) * len(v)
            return "[" + ", ".join(self.value(x, xt) for x, xt in zip(v, types, strict=True)) + "]"
        if t.kind == "dict":
            if t.args[0].kind != "str":
                raise Untranslatable(f"a JS object needs string keys, not {t.args[0]}")
            return "{" + ", ".join(f"{json.dumps(k)}: {self.value(x, t.args[1])}" for k, x in v.items()) + "}"
        raise Untranslatable(f"no JavaScript spelling for type {t}")

    def signature(self, p: PyProblem) -> str:
        return f"function {p.name}({', '.join(self.param_names(p))})"

    def test_suite(self, p: PyProblem) -> str:
        lines = ["", 'const assert = require("node:assert");', "", "function test() {", f"  let candidate = {p.name};"]
        for t in p.tests:
            call = "candidate" + self.call(p, t.args)[len(p.name):]
            if t.tolerance is None:
                lines.append(f"  assert.deepStrictEqual({call}, {self.value(t.expected, p.return_type)});")
            else:
                lines.append(f"  assert.ok(Math.abs({call} - {number(t.expected)}) < {number(t.tolerance)});")
        return "\n".join([*lines, "}", "", "test();", ""])

    def job(self, program: str, cfg: SandboxConfig) -> Job:
        timeout = cfg.timeout + STARTUP_S
        limits = rlimit_spec(cfg, timeout, max(cfg.memory_mb, MEMORY_MB), max(cfg.max_processes, PROCESSES))
        run = Step((self.tool("node"), "-e", CHECK_THEN_RUN, "program.js"), "run", timeout, limits,
                   compile_error_status=COMPILE_ERROR_STATUS)  # fmt: skip
        return Job({"program.js": program.encode("utf-8", "surrogatepass")}, (run,))
