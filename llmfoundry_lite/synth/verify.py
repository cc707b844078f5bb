"""Verification by execution: a pair's tests run against its function in the eval harness's sandbox.

The program of a pair (``build_program``) is ``from __future__ import annotations``, the imports
the function uses, the function itself (``code + response``), then its tests in order; it runs
under ``python -I -S`` in a fresh bubblewrap sandbox (``llmfoundry_lite.sandbox``) and the
pair is verified only if it returns normally. The future import keeps annotations that name the
module's own classes from failing at ``def`` time; only annotation introspection could tell.

Before anything runs, ``untestable`` decides, from the code alone, whether the program can be
meaningful; a pair that cannot is never executed and stays ``untested``. Reasons, in order:
not Python (``language_not_runnable``, set by the pipeline for JavaScript / TypeScript / Java);
no tests; a method (it needs its class, which the program lacks); decorated (the prompt and
program leave the decorator out, so the tested function would not be the real one); an import,
in the function or a test, of a module outside the standard library (the sandbox has only it)
or a relative one; an import of an ``unsafe_modules`` module; function and tests that do not
compile as one module; names the program uses but does not define (module constants, helper
functions), found with the stdlib ``symtable``.
"""

from __future__ import annotations

import ast
import builtins
import symtable
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from llmfoundry_lite.sandbox import ExecResult, Sandbox
from llmfoundry_lite.synth.checks import compiles
from llmfoundry_lite.synth.extract import Function
from llmfoundry_lite.synth.mining import MinedTest

UNTESTED_REASONS = {
    "language_not_runnable": "JavaScript / TypeScript / Java: no tests are mined and the sandbox runs Python only",
    "no_tests": "neither doctest examples nor literal asserts of the function were found",
    "method": "a method: running it needs its class, which the test program does not have",
    "decorated": "decorated: the prompt and the test program leave the decorator out",
    "non_stdlib_import": "the function or a test imports a module outside the standard library, or a relative one",
    "unsafe_import": "the function or a test imports a module of unsafe_modules",
    "tests_do_not_compile": "the function and its tests' code do not compile as one module (e.g. a __future__ import)",
    "free_names": "uses names defined elsewhere in its module (constants, helpers), which the program lacks",
}
"""Why a pair's tests are not run, in the order tried; such pairs are ``untested``."""

PROLOGUE = "from __future__ import annotations\n\n"
# site.py adds these; the sandbox runs python -S, so a program must not count on them.
SITE_BUILTINS = frozenset({"help", "copyright", "credits", "license", "exit", "quit"})
BUILTIN_NAMES = frozenset(dir(builtins)) - SITE_BUILTINS


def build_program(code: str, tests: Iterable[str]) -> str:
    """The program run in the sandbox: the prologue, the function (``code``: prompt code + response), its tests."""
    return PROLOGUE + code + "".join(f"\n\n{t}" for t in tests)


def _import_roots(tree: ast.AST) -> list[str]:
    """Root modules of every import in ``tree``; a relative import counts as ``.``."""
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            roots.append("." if node.level else (node.module or "").split(".")[0])
    return roots


def free_names(source: str) -> set[str]:
    """Names ``source`` (a whole module) reads that neither it nor the builtins define."""
    table = symtable.symtable(source, "<program>", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    read = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        read.update(s.get_name() for s in child.get_symbols() if s.is_global())
        stack.extend(child.get_children())
    return read - bound - BUILTIN_NAMES


def untestable(fn: Function, tests: Sequence[MinedTest], unsafe_modules: frozenset[str]) -> str | None:
    """The first of ``UNTESTED_REASONS`` that keeps ``fn``'s tests from running, or None when they can run."""
    if not tests:
        return "no_tests"
    if fn.class_name is not None:
        return "method"
    if fn.node.decorator_list:
        return "decorated"
    test_trees = [ast.parse(t.code) for t in tests]
    roots = [*fn.used_modules, *_import_roots(fn.node), *(r for tree in test_trees for r in _import_roots(tree))]
    if any(r not in sys.stdlib_module_names for r in roots):
        return "non_stdlib_import"
    if any(r in unsafe_modules for r in roots):
        return "unsafe_import"
    analysed = build_program(fn.program, (t.code for t in tests))
    if not compiles(analysed):
        return "tests_do_not_compile"
    if free_names(analysed):
        return "free_names"
    return None


def run_programs(programs: Sequence[str], sandbox: Sandbox, workers: int) -> list[ExecResult]:
    """Each program's result in input order, ``workers`` sandboxes busy at once (threads only wait on them)."""
    if not programs:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(sandbox.run, programs))
