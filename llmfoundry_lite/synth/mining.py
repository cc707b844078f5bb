"""Tests of a function found in its own file, read without running anything: doctests and literal asserts.

Two sources, both conservative on purpose (a wrong test drops a good pair as ``failed_tests``):

- **Doctests**: the ``>>>`` examples of the function's docstring, parsed by the stdlib's
  ``doctest.DocTestParser``, less those marked ``+SKIP``; at least one must call the function by
  its name (else the test would check nothing about it). All examples of one docstring are one
  test, since later examples use names that earlier ones bind. The test is a small program that hands the examples back to
  ``doctest`` inside the sandbox and asserts that none failed, so doctest's own output matching
  (``<BLANKLINE>``, tracebacks, ``# doctest: +ELLIPSIS`` directives) decides.
- **Asserts**: ``assert`` statements at module level or directly in the body of a module-level
  ``def test_*`` whose expression calls the function by its plain name with only literal arguments,
  and holds nothing but literals, comparisons, operators and calls of a few pure builtins
  (``SAFE_BUILTINS``). ``assert scale([1, 2], 3) == [3, 6]`` qualifies;
  ``assert scale(xs, 3) == expected`` (names bound elsewhere) or ``self.assertEqual(...)`` do not.
  Each such assert is one test, re-rendered with ``ast.unparse``.

Only module-level functions get assert tests (a method is called through an object), and only
when no other module-level function of the file has the same name. What is
found but not usable is counted by ``DISCARD_REASONS`` rather than silently ignored.
"""

from __future__ import annotations

import ast
import doctest
from collections import Counter
from dataclasses import dataclass

from llmfoundry_lite.synth.checks import compiles, is_literal
from llmfoundry_lite.synth.extract import Function, child_blocks

SAFE_BUILTINS = frozenset({"abs", "all", "any", "bool", "dict", "float", "frozenset", "int", "isinstance", "len",
                           "list", "max", "min", "repr", "round", "set", "sorted", "str", "sum", "tuple"})
DISCARD_REASONS = {
    "doctest_unparsable": "doctest's parser rejects the docstring's examples (indentation, missing space after >>>)",
    "doctest_syntax_error": "an example's source does not compile",
    "doctest_no_call": "no example (other than +SKIP ones) calls the function by its name (methods: ``.name(``)",
    "assert_not_literal": "an assert calls the function but with names or other non-literal parts",
}
"""Why a found doctest or assert did not become a test; counted per pair in ``stats.json``."""

DOCTEST_PROGRAM = """\
import doctest

_test = doctest.DocTestParser().get_doctest({text!r}, dict(globals()), {name!r}, None, 0)
_result = doctest.DocTestRunner().run(_test, clear_globs=False)
assert not _result.failed, f"{{_result.failed}} of {{_result.attempted}} doctest examples of {name} failed"
"""
_OPERATORS = (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Tuple, ast.List, ast.Set, ast.Dict)


@dataclass(frozen=True)
class MinedTest:
    """One test of a function: the source that goes into the pair's ``tests`` and the code it runs."""

    kind: str
    """``doctest`` or ``assert``."""
    source: str
    """A Python program that returns normally exactly when the test passes (given the function defined)."""
    code: str
    """The code the test itself runs (the examples' sources for a doctest): what the import and
    free-name analysis of ``verify.py`` reads."""


def doctest_text(examples: list[doctest.Example]) -> str:
    """The examples as doctest input again, at indentation 0: prompts, continuation lines, expected output."""
    lines = []
    for example in examples:
        source = example.source.rstrip("\n").split("\n")
        lines += [f">>> {source[0]}", *(f"... {line}" for line in source[1:])]
        lines += example.want.rstrip("\n").split("\n") if example.want else []
    return "\n".join(lines) + "\n"


def doctest_test(fn: Function) -> MinedTest | str | None:
    """The doctest of ``fn``'s docstring, why its examples cannot be used, or None when it has none."""
    try:
        examples = doctest.DocTestParser().get_examples(fn.docstring, name=fn.qualname)
    except ValueError:
        return "doctest_unparsable"
    examples = [e for e in examples if not e.options.get(doctest.SKIP)]  # doctest would not run them either
    if not examples:
        return None
    if not all(compiles(e.source) for e in examples):
        return "doctest_syntax_error"
    if not any(_calls(ast.parse(e.source), fn.node.name, fn.class_name is not None) for e in examples):
        return "doctest_no_call"
    name = fn.qualname
    return MinedTest("doctest", DOCTEST_PROGRAM.format(text=doctest_text(examples), name=name),
                "".join(e.source for e in examples))


def _calls(node: ast.AST, name: str, method: bool = False) -> bool:
    """``node`` calls ``name(...)``, or for a method also ``<anything>.name(...)``."""
    return any(isinstance(n, ast.Call) and ((isinstance(n.func, ast.Name) and n.func.id == name)
                                            or (method and isinstance(n.func, ast.Attribute) and n.func.attr == name))
               for n in ast.walk(node))


def _only_literals(node: ast.expr, name: str) -> bool:
    """``node`` holds literals, operators, calls of ``name`` with literal arguments and safe builtins."""
    if is_literal(node):
        return True
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or any(k.arg is None for k in node.keywords):
            return False
        args = [*node.args, *(k.value for k in node.keywords)]
        if node.func.id == name:
            return all(is_literal(a) for a in args)
        return node.func.id in SAFE_BUILTINS and all(_only_literals(a, name) for a in args)
    if isinstance(node, _OPERATORS):
        return all(_only_literals(child, name) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return False


def _module_level_defs(body: list[ast.stmt]) -> list[str]:
    """Names of the functions a module-level assert can mean: defs at module level, in if/try/with blocks too."""
    names = []
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            names.append(stmt.name)
        elif not isinstance(stmt, ast.ClassDef):
            for block in child_blocks(stmt):
                names += _module_level_defs(block)
    return names


@dataclass(frozen=True)
class ModuleAsserts:
    """What assert mining needs of one module, gathered once per document (not once per function)."""

    asserts: tuple[ast.Assert, ...]
    """Asserts at module level and directly in module-level ``def test_*`` bodies, in source order."""
    def_counts: Counter
    """How many module-level functions bear each name (empty when there are no asserts)."""

    @classmethod
    def of(cls, tree: ast.Module) -> ModuleAsserts:
        found: list[ast.Assert] = []
        for stmt in tree.body:
            if isinstance(stmt, ast.Assert):
                found.append(stmt)
            elif isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test_"):
                found += [s for s in stmt.body if isinstance(s, ast.Assert)]
        return cls(tuple(found), Counter(_module_level_defs(tree.body)) if found else Counter())


def assert_tests(fn: Function, module: ModuleAsserts) -> tuple[list[MinedTest], int]:
    """Literal asserts that call module-level function ``fn`` (duplicates once), and how many were not literal."""
    name = fn.node.name
    if fn.class_name is not None or module.def_counts[name] > 1:  # a method, or a name of several functions
        return [], 0
    tests: list[MinedTest] = []
    not_literal = 0
    for stmt in module.asserts:
        if not _calls(stmt.test, name):
            continue
        if not _only_literals(stmt.test, name) or (stmt.msg is not None and not is_literal(stmt.msg)):
            not_literal += 1
            continue
        source = ast.unparse(stmt) + "\n"
        if all(t.source != source for t in tests):
            tests.append(MinedTest("assert", source, source))
    return tests, not_literal


def mine_tests(fn: Function, module: ModuleAsserts) -> tuple[tuple[MinedTest, ...], tuple[str, ...]]:
    """Every test of ``fn`` (its doctest first, then asserts) and the reasons of what was found but discarded."""
    tests: list[MinedTest] = []
    discarded: list[str] = []
    doc = doctest_test(fn)
    if isinstance(doc, MinedTest):
        tests.append(doc)
    elif doc is not None:
        discarded.append(doc)
    asserts, not_literal = assert_tests(fn, module)
    tests += asserts
    discarded += ["assert_not_literal"] * not_literal
    return tuple(tests), tuple(discarded)
