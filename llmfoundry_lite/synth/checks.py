"""Per-function filters: why a documented function does not make a usable pair, or None.

Reasons are tried in the order of ``REASONS`` and the first that fires is counted, so a function
with an empty body is ``trivial_body``, never also ``no_return``. The corpus-wide reasons
(``decontaminated``, ``near_duplicate``) live in ``corpus_checks.py``. JavaScript / TypeScript / Java
functions (``extract_treesitter.py``) go through ``source_drop_reason``: the same reasons in the same order,
judged from the facts their extractors recorded (``does_not_compile``: tree-sitter found an error).
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator

from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.extract import FUNCTION_TYPES, Function, format_prompt
from llmfoundry_lite.synth.extract_treesitter import SourceFunction, format_source_prompt

REASONS = {
    "inline_layout": "the docstring shares a line with the signature or the next statement "
                     "(JS/TS/Java: the doc comment shares the declaration's line, or code follows the body's {)",
    "expression_body": "JS/TS: an arrow function whose body is an expression, not a { ... } block",
    "no_parameters": "no parameters besides self/cls",
    "trivial_body": "only pass / ... / strings / raise NotImplementedError, or one return of a literal",
    "no_return": "no return with a value (other than None) in the function itself (nested defs not counted)",
    "too_short": "fewer code lines than min_body_lines after the docstring",
    "too_long": "more code lines than max_body_lines after the docstring",
    "todo": "TODO / FIXME / XXX in the docstring or body",
    "unsafe_api": "imports or uses an unsafe module, calls an unsafe builtin, writes files",
    "prompt_too_long": "prompt longer than max_prompt_chars",
    "response_too_long": "response longer than max_response_chars",
    "does_not_compile": "compile() of code + response fails (JS/TS/Java: tree-sitter error inside the function)",
}
"""Per-function drop reasons, in the order they are tried."""

TODO = re.compile(r"\b(?:TODO|FIXME|XXX)\b")
# Methods of pathlib.Path (and os-like objects) that change the filesystem; matched on any receiver.
PATH_WRITES = frozenset({"write_text", "write_bytes", "unlink", "rmdir", "mkdir", "touch", "symlink_to",
                         "hardlink_to", "chmod", "lchmod"})
OPENERS = frozenset({"open"})  # ``open(...)``, ``io.open(...)``, ``codecs.open(...)``, ``gzip.open(...)``
WRITE_MODE_CHARS = frozenset("wax+")
_SCOPES = FUNCTION_TYPES + (ast.Lambda, ast.ClassDef)


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function's body, not descending into nested functions, lambdas or classes."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(child, _SCOPES):
            stack.extend(ast.iter_child_nodes(child))


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = node.args
    names = [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    positional = [*a.posonlyargs, *a.args]
    if positional and positional[0].arg in ("self", "cls"):
        names.remove(positional[0].arg)
    return names


def is_literal(node: ast.expr) -> bool:
    """``node`` is a literal that ``ast.literal_eval`` accepts (numbers, strings, containers of them)."""
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _is_placeholder(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
        return True
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def is_trivial(body: list[ast.stmt]) -> bool:
    """Statements after the docstring that do nothing, only refuse, or return one literal."""
    if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None:
        return is_literal(body[0].value)
    return all(_is_placeholder(s) for s in body)


def returns_value(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``return <expr>`` (not ``return None``) in the function's own scope."""
    return any(isinstance(n, ast.Return) and n.value is not None
               and not (isinstance(n.value, ast.Constant) and n.value.value is None) for n in _own_nodes(node))


def code_lines(text: str) -> int:
    """Lines that are neither blank nor only a comment."""
    return sum(1 for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#"))


def _writes_by_open(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return bool(WRITE_MODE_CHARS & set(mode.value))
    return True  # a mode computed at run time may write


def unsafe_use(fn: Function, modules: frozenset[str], calls: frozenset[str]) -> str | None:
    """What makes ``fn`` unsafe to run in a test sandbox (``import os``, ``eval()``, ...), or None."""
    used = [m for m in fn.used_modules if m in modules]
    if used:
        return f"uses module-level import of {used[0]}"
    for n in ast.walk(fn.node):
        if isinstance(n, ast.Import | ast.ImportFrom):
            roots = [a.name.split(".")[0] for a in n.names] if isinstance(n, ast.Import) else \
                [(n.module or "").split(".")[0]] if n.level == 0 else []
            hit = [r for r in roots if r in modules]
            if hit:
                return f"imports {hit[0]}"
        elif isinstance(n, ast.Call):
            func = n.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if isinstance(func, ast.Name) and name in calls:
                return f"calls {name}()"
            if name in OPENERS and _writes_by_open(n):
                return f"calls {name}() in a writing mode"
            if isinstance(func, ast.Attribute) and name in PATH_WRITES:
                return f"calls .{name}()"
    return None


def compiles(source: str) -> bool:
    """``compile()`` (to bytecode, never run) accepts ``source``; warnings are not failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(source, "<instruct>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


def drop_reason(fn: Function, cfg: SynthConfig) -> str | None:
    """The first reason of ``REASONS`` that applies to ``fn``, or None when it makes a pair."""
    if fn.inline:
        return "inline_layout"
    if not _parameters(fn.node):
        return "no_parameters"
    if is_trivial(fn.node.body[1:]):
        return "trivial_body"
    if not returns_value(fn.node):
        return "no_return"
    lines = code_lines(fn.body)
    if lines < cfg.min_body_lines:
        return "too_short"
    if lines > cfg.max_body_lines:
        return "too_long"
    if TODO.search(fn.docstring) or TODO.search(fn.body):
        return "todo"
    if unsafe_use(fn, frozenset(cfg.unsafe_modules), frozenset(cfg.unsafe_calls)) is not None:
        return "unsafe_api"
    if len(format_prompt(fn)) > cfg.max_prompt_chars:
        return "prompt_too_long"
    if len(fn.body) > cfg.max_response_chars:
        return "response_too_long"
    if not compiles(fn.program):
        return "does_not_compile"
    return None


def source_drop_reason(fn: SourceFunction, cfg: SynthConfig) -> str | None:
    """``drop_reason`` for a JavaScript / TypeScript / Java function: the first of ``REASONS`` that applies."""
    checks = (
        ("inline_layout", fn.inline),
        ("expression_body", fn.expression_body),
        ("no_parameters", not fn.parameters),
        ("trivial_body", fn.trivial),
        ("no_return", not fn.returns_value),
        ("too_short", fn.body_lines < cfg.min_body_lines),
        ("too_long", fn.body_lines > cfg.max_body_lines),
        ("todo", bool(TODO.search(fn.docstring) or TODO.search(fn.body))),
        ("unsafe_api", fn.unsafe is not None),
        ("prompt_too_long", len(format_source_prompt(fn)) > cfg.max_prompt_chars),
        ("response_too_long", len(fn.body) > cfg.max_response_chars),
        ("does_not_compile", fn.has_error),
    )
    return next((reason for reason, fires in checks if fires), None)
