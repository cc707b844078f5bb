"""Documented Python functions as (prompt, response) text, read with ``ast`` (nothing is executed).

Which functions: every ``def`` / ``async def`` with a docstring at module level or in a class
body (nested classes too), also inside ``if`` / ``try`` / ``with`` / loop blocks at those levels.
Functions defined inside other functions are part of their parent's body, not pairs of their own.
Methods are kept: the prompt header names their class and the ``def`` line keeps ``self``/``cls``.

The prompt format (``format_prompt``), for a function ``f`` of a module that imports ``re``::

    Write the body of the following Python function.

    ```python
    import re


    def f(text: str) -> list[str]:
        \"\"\"Split ``text`` into words.\"\"\"
    ```

(methods: ``Write the body of the following method of the Python class `Outer.Inner`.``). The code
block holds, in order: the module-level imports the function uses, re-rendered with only the used
names (``from typing import List``); the ``def`` line(s) as written, without decorators; the
docstring exactly as written. The response is the rest of the body as written, from the line after
the docstring (comments between them included, leading blank lines not) to the function's last line.
Everything is dedented by the ``def`` line's indentation (a continuation line of a multi-line string
loses that prefix too when it has it), so ``code_of_prompt(prompt) + response`` is the function as
valid Python. The fence grows beyond three backticks when the code itself holds a run of them.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field

FUNCTION_HEADER = "Write the body of the following Python function."
METHOD_HEADER = "Write the body of the following method of the Python class `{cls}`."
LANGUAGE_TAG = "python"
FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)
_INDENT = re.compile(r"[ \t]*")
_BACKTICKS = re.compile(r"`{3,}")
_COMMENT_OR_BLANK = re.compile(r"\s*(#.*)?$")


@dataclass(frozen=True, eq=False)
class Function:
    """One documented function: where it is, the text of its pair, and its tree for the checks."""

    qualname: str
    """``name``, or ``Class.name`` for a method (``Outer.Inner.name`` in nested classes)."""
    lineno: int
    """Line of the ``def`` keyword in the (newline-normalized) document."""
    class_name: str | None
    """Qualified name of the enclosing class, None at module level."""
    code: str
    """The prompt's code block: used imports, ``def`` line(s), docstring; dedented, ends with a newline."""
    body: str
    """The response: the body after the docstring, indented as in the function; '' when there is none."""
    docstring: str
    """The docstring's value as written (not cleaned)."""
    inline: bool
    """The docstring shares a line with the signature or with the next statement: no clean split exists."""
    used_modules: tuple[str, ...]
    """Root modules of the module-level imports the function's signature or body uses, sorted."""
    node: ast.FunctionDef | ast.AsyncFunctionDef = field(repr=False)
    """The function's tree (the checks walk it)."""

    @property
    def program(self) -> str:
        """The function as one piece of Python source: ``code + body``."""
        return self.code + self.body


def parse_module(text: str) -> ast.Module:
    """``ast`` tree of ``text`` with newlines normalized; raises SyntaxError/ValueError/RecursionError.

    Warnings about the source (invalid escapes, ``is`` with a literal) are silenced: only errors matter.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(normalize_newlines(text))


def normalize_newlines(text: str) -> str:
    """``\\r\\n`` and lone ``\\r`` as ``\\n``: then ``ast`` line numbers index ``text.split("\\n")``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def extract_functions(text: str, tree: ast.Module | None = None) -> list[Function]:
    """Every documented function of module source ``text`` in source order (``tree``: its parse, if done)."""
    tree = parse_module(text) if tree is None else tree
    lines = normalize_newlines(text).split("\n")
    imports = _module_imports(tree.body)
    return [_function(node, cls, lines, imports) for node, cls in _documented(tree.body, None)]


def child_blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """Statement lists nested in a compound statement that runs at its parent's level (not def/class)."""
    blocks = [getattr(stmt, name, None) for name in ("body", "orelse", "finalbody")]
    blocks += [h.body for h in getattr(stmt, "handlers", [])]
    return [b for b in blocks if isinstance(b, list)]


FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _documented(body: list[ast.stmt], cls: str | None) -> list[tuple[FunctionNode, str | None]]:
    found = []
    for stmt in body:
        if isinstance(stmt, FUNCTION_TYPES):
            if ast.get_docstring(stmt, clean=False) is not None:
                found.append((stmt, cls))
        elif isinstance(stmt, ast.ClassDef):
            found += _documented(stmt.body, f"{cls}.{stmt.name}" if cls else stmt.name)
        else:
            for block in child_blocks(stmt):
                found += _documented(block, cls)
    return found


def _module_imports(body: list[ast.stmt]) -> dict[str, tuple[ast.Import | ast.ImportFrom, ast.alias]]:
    """Name bound at module level by an import -> (the import statement, its alias); later bindings win."""
    bound: dict[str, tuple[ast.Import | ast.ImportFrom, ast.alias]] = {}
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                continue
            for alias in stmt.names:
                if alias.name != "*":
                    bound[alias.asname or alias.name.split(".")[0]] = (stmt, alias)
        elif not isinstance(stmt, FUNCTION_TYPES + (ast.ClassDef,)):
            for block in child_blocks(stmt):
                bound.update(_module_imports(block))
    return bound


def _root_module(stmt: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    if isinstance(stmt, ast.Import):
        return alias.name.split(".")[0]
    return "." * stmt.level + (stmt.module or "").split(".")[0]


def _used_imports(node: ast.AST, imports: dict) -> tuple[list[str], tuple[str, ...]]:
    """Rendered import lines (only the used names, in source order) and their root modules."""
    if not imports:
        return [], ()
    names = {n.id for part in (node.args, node.returns, *node.body) if part is not None
             for n in ast.walk(part) if isinstance(n, ast.Name)}
    by_stmt: dict[int, tuple[ast.Import | ast.ImportFrom, list[ast.alias]]] = {}
    for name in sorted(names & imports.keys()):
        stmt, alias = imports[name]
        entry = by_stmt.setdefault(id(stmt), (stmt, []))
        if alias not in entry[1]:
            entry[1].append(alias)
    rendered, roots = [], set()
    for stmt, aliases in sorted(by_stmt.values(), key=lambda e: (e[0].lineno, e[0].col_offset)):
        aliases.sort(key=stmt.names.index)
        pruned = (ast.Import(names=aliases) if isinstance(stmt, ast.Import)
                  else ast.ImportFrom(module=stmt.module, names=aliases, level=stmt.level))
        rendered.append(ast.unparse(pruned))
        roots.update(_root_module(stmt, a) for a in aliases)
    return rendered, tuple(sorted(roots))


def _dedent(lines: list[str], indent: str) -> str:
    return "".join((line[len(indent):] if line.startswith(indent) else line.strip() and line) + "\n"
                   for line in lines)


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, cls: str | None, lines: list[str],
              imports: dict) -> Function:
    doc = node.body[0]
    indent = _INDENT.match(lines[node.lineno - 1]).group()
    before_doc = lines[doc.lineno - 1].encode("utf-8", "surrogatepass")[:doc.col_offset]  # col_offset counts bytes
    after_doc_stmt = node.body[1].lineno if len(node.body) > 1 else None
    inline = bool(before_doc.strip()) or after_doc_stmt == doc.end_lineno
    signature = lines[node.lineno - 1:doc.lineno - 1] if not inline else lines[node.lineno - 1:doc.end_lineno]
    while signature and _COMMENT_OR_BLANK.match(signature[-1]):
        signature.pop()  # comments between the ``def`` line and the docstring belong to neither side
    body = lines[doc.end_lineno:node.end_lineno] if not inline else []
    while body and not body[0].strip():
        body.pop(0)
    import_lines, roots = _used_imports(node, imports)
    head = "".join(f"{line}\n" for line in import_lines) + ("\n\n" if import_lines else "")
    docstring = "" if inline else _dedent(lines[doc.lineno - 1:doc.end_lineno], indent)
    return Function(
        qualname=f"{cls}.{node.name}" if cls else node.name, lineno=node.lineno, class_name=cls,
        code=head + _dedent(signature, indent) + docstring, body=_dedent(body, indent) if body else "",
        docstring=ast.get_docstring(node, clean=False) or "", inline=inline, used_modules=roots, node=node)


def fenced(code: str, tag: str) -> str:
    """``code`` in a Markdown fence tagged ``tag``, one backtick longer than any run inside the code."""
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(code)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{tag}\n{code}{fence}\n"


def format_prompt(fn: Function) -> str:
    """The instruction: a one-line header, a blank line, then ``fn.code`` in a ``python`` code fence."""
    header = METHOD_HEADER.format(cls=fn.class_name) if fn.class_name else FUNCTION_HEADER
    return f"{header}\n\n{fenced(fn.code, LANGUAGE_TAG)}"


def code_of_prompt(prompt: str) -> str:
    """The code block of a prompt made by :func:`format_prompt` (its fence lines removed)."""
    _, _, fenced = prompt.partition("\n\n")
    fence_line, _, rest = fenced.partition("\n")
    fence = fence_line.removesuffix(LANGUAGE_TAG)
    if not fence.startswith("```") or not rest.endswith(f"{fence}\n"):
        raise ValueError("not a prompt of format_prompt: no code fence after the header")
    return rest.removesuffix(f"{fence}\n")
