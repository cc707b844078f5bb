"""Does the file parse? Python via ``ast`` (compile only, never executed); others via tree-sitter.

Tree-sitter grammars come from ``tree-sitter-language-pack`` 0.13.0, which bundles them in the
wheel (the 1.x pack downloads grammars at run time and fails offline). Tree-sitter always
produces a tree; a file "does not parse" when the tree holds ERROR or MISSING nodes covering
more than ``parse.max_error_fraction`` of its bytes (0 by default: any error rejects). C and
C++ get a per-language tolerance (``parse.error_fraction_overrides``) because tree-sitter sees
code before the preprocessor: an unexpanded macro is a syntax error to it, not to a compiler.
"""

from __future__ import annotations

import ast
import functools
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import ParseConfig


# The Stack's ``lang`` value -> tree-sitter grammar names to try, in order. A ``.h`` header is
# labelled C but is often C++; and the C++ grammar recovers from unexpanded macros
# (``EXPORT int f();``) far better than the C one (median error share on /usr/include-style
# headers: 0.1% vs 9%) and is twice as fast, so C tries it first and the C grammar second.
GRAMMARS: dict[str, tuple[str, ...]] = {
    "JavaScript": ("javascript",),
    "TypeScript": ("typescript",),
    "Java": ("java",),
    "C": ("cpp", "c"),
    "C++": ("cpp",),
    "Go": ("go",),
    "Rust": ("rust",),
}


def python_error(text: str, path: str = "<doc>") -> str | None:
    """Why ``text`` is not valid Python 3 (``"line N: msg"``), or None when it compiles to an AST."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a parse failure
            compile(text, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as err:
        return f"line {err.lineno}: {err.msg}" if err.lineno else err.msg
    except (ValueError, RecursionError, MemoryError) as err:  # NUL bytes, pathological nesting
        return f"{type(err).__name__}: {err}"
    return None


@functools.cache
def _parser(grammar: str) -> Any:
    from tree_sitter_language_pack import get_parser

    return get_parser(grammar)


def error_bytes(root: Any) -> tuple[int, int | None]:
    """Bytes covered by ERROR nodes (a MISSING node counts 1) and the first error's start row."""
    total, first_row = 0, None
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            total += max(1, node.end_byte - node.start_byte)
            row = node.start_point[0] + 1
            first_row = row if first_row is None else min(first_row, row)
            continue
        stack.extend(child for child in node.children if child.has_error)
    return total, first_row


def tree_sitter_error(text: str, grammars: tuple[str, ...], max_error_fraction: float) -> str | None:
    """Why ``text`` fails every grammar in ``grammars``, or None when one accepts it."""
    data = text.encode("utf-8", "surrogatepass")
    detail = None
    for grammar in grammars:
        root = _parser(grammar).parse(data).root_node
        if not root.has_error:
            return None
        bad, row = error_bytes(root)
        if bad <= max_error_fraction * len(data):
            return None
        detail = detail or f"{grammar}: syntax error at line {row} ({bad} of {len(data)} bytes in error)"
    return detail


def parse_error(doc: dict, cfg: ParseConfig) -> str | None:
    """Why ``doc`` does not parse, or None (also None for languages not checked)."""
    lang = doc["lang"]
    if lang not in cfg.languages:
        return None
    if lang == "Python":
        return python_error(doc["content"], doc["path"] or "<doc>")
    grammars = GRAMMARS[lang]
    if lang == "TypeScript" and doc["path"].endswith(".tsx"):
        grammars = ("tsx",)
    tolerance = cfg.error_fraction_overrides.get(lang, cfg.max_error_fraction)
    return tree_sitter_error(doc["content"], grammars, tolerance)
