"""Does the file parse? Python via ``ast`` (compile only, never executed); others via tree-sitter.

Tree-sitter grammars come from ``tree-sitter-language-pack`` 0.13.0, which bundles them in the
wheel (the 1.x pack downloads grammars at run time and fails offline). Tree-sitter always
produces a tree; a file "does not parse" when the tree holds ERROR or MISSING nodes covering
more than ``parse.max_error_fraction`` of its bytes (0 by default: any error rejects). C and
C++ get a per-language tolerance (``parse.error_fraction_overrides``) because tree-sitter sees
code before the preprocessor: an unexpanded macro is a syntax error to it, not to a compiler.

Python that fails to compile gets a reason (``parse_error:python2``, ``parse_error:python_newer``
or plain ``parse_error``) from ``python_dialect``; files that compile pay nothing for it.
"""

from __future__ import annotations

import ast
import functools
import re
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmfoundry_lite.filtering.config import ParseConfig

PARSE_ERROR = "parse_error"


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


def compile_error(text: str, path: str = "<doc>") -> Exception | None:
    """The exception ``compile`` (AST only, never executed) raises on ``text``, or None when it compiles."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a parse failure
            compile(text, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:  # NUL bytes, pathological nesting
        return err
    return None


def describe(err: Exception) -> str:
    """``"line N: msg"`` for a SyntaxError, ``"Type: msg"`` for the rest."""
    if isinstance(err, SyntaxError):
        return f"line {err.lineno}: {err.msg}" if err.lineno else err.msg
    return f"{type(err).__name__}: {err}"


def python_error(text: str, path: str = "<doc>") -> str | None:
    """Why ``text`` is not valid Python 3 (``"line N: msg"``), or None when it compiles to an AST."""
    err = compile_error(text, path)
    return None if err is None else describe(err)


def python_verdict(text: str, path: str = "<doc>") -> tuple[str, str] | None:
    """``(reason, detail)`` when ``text`` does not compile, or None.

    The reason names Python 2 code or grammar newer than this interpreter when the first
    error CPython reports sits on such a construct (``python_dialect``); only failing files
    pay for that second look.
    """
    err = compile_error(text, path)
    if err is None:
        return None
    detail = describe(err)
    dialect = python_dialect(text, err) if isinstance(err, SyntaxError) else None
    if dialect is None:
        return PARSE_ERROR, detail
    reason, construct = dialect
    return f"{PARSE_ERROR}:{reason}", f"{detail} ({reason}: {construct})"


@functools.cache
def _parser(grammar: str) -> Any:
    from tree_sitter_language_pack import get_parser

    return get_parser(grammar)


PYTHON2, NEWER = "python2", "python_newer"
# Python 2 grammar that Python 3 rejects. tree-sitter-python still parses it (print/exec statements,
# backticks, ``<>``, ``except E, e``), so a capture is the construct; its name goes into the detail.
PYTHON2_QUERY = r"""
(print_statement) @print_statement
(exec_statement) @exec_statement
((string_start) @backtick_repr (#match? @backtick_repr "^`"))
((string_start) @ur_string (#match? @ur_string "^[uU][rR]"))
((integer) @octal_or_long_literal (#match? @octal_or_long_literal "^0[0-9]*[1-9]|[lL]$"))
(comparison_operator "<>" @ne_operator)
(except_clause "," @except_comma)
(raise_statement (expression_list) @raise_comma)
(parameters (tuple_pattern) @tuple_parameter)
(lambda_parameters (tuple_pattern) @tuple_parameter)
(default_parameter name: (tuple_pattern) @tuple_parameter)
"""
# Grammar newer than this interpreter (3.12: PEP 695 type parameters and aliases, PEP 701 f-strings;
# strings are checked for PEP 701 in Python, ``_pep701_fstring``).
NEWER_QUERY = r"""
(type_alias_statement) @type_alias
(function_definition type_parameters: (type_parameter) @type_parameters)
(class_definition type_parameters: (type_parameter) @type_parameters)
(string) @string
"""
# Python 3-only grammar: a file that has it is not Python 2, whatever else it holds.
PYTHON3_QUERY = r"""
(nonlocal_statement) @py3
(typed_parameter) @py3
(typed_default_parameter) @py3
(function_definition return_type: (_) @py3)
(keyword_separator) @py3
(positional_separator) @py3
(named_expression) @py3
(await) @py3
(match_statement) @py3
(interpolation) @py3
(assignment type: (_) @py3)
(pattern_list (list_splat_pattern) @py3)
(tuple_pattern (list_splat_pattern) @py3)
(list (list_splat) @py3)
(set (list_splat) @py3)
(tuple (list_splat) @py3)
(dictionary (dictionary_splat) @py3)
(raise_statement "from" @py3)
(yield "from" @py3)
(function_definition "async" @py3)
(for_statement "async" @py3)
(with_statement "async" @py3)
(type_alias_statement) @py3
(type_parameter) @py3
(parameters (list_splat_pattern) . [(identifier) (default_parameter)] @py3)
((call function: (identifier) @_print arguments: (argument_list (keyword_argument name: (identifier) @print_call)))
 (#eq? @_print "print") (#match? @print_call "^(end|file|sep|flush)$"))
"""
# tree-sitter's exec_statement takes only a string or a name; Python 2 took any expression
# (``exec compile(src, f, "exec") in ns``), which tree-sitter marks as an ERROR on that line.
EXEC_LINE = re.compile(r"\s*exec\s+(?!(?:in|is|if|and|or|not|for|else)\b)[\w'\"(\[]")


@functools.cache
def _query(source: str) -> Any:
    from tree_sitter import Query
    from tree_sitter_language_pack import get_language

    return Query(get_language("python"), source)


def _captures(source: str, root: Any, row: int | None = None) -> dict[str, list[Any]]:
    """Captures of query ``source`` in the tree ``root``, only on line ``row`` (0-based) when given."""
    from tree_sitter import QueryCursor

    cursor = QueryCursor(_query(source))
    if row is not None:
        cursor.set_point_range((row, 0), (row + 1, 0))
    return cursor.captures(root)


def _error_rows(root: Any) -> set[int]:
    """Start lines (0-based) of the ERROR and MISSING nodes in a tree."""
    rows, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            rows.add(node.start_point[0])
            continue
        stack.extend(child for child in node.children if child.has_error)
    return rows


def _pep701_fstring(string: Any) -> bool:
    """Whether an f-string needs 3.12: its quote, a backslash or (single-quoted) a newline inside ``{}``."""
    start = string.children[0] if string.children else None
    if start is None or start.type != "string_start":
        return False
    opener = start.text.decode("utf-8", "replace")
    quote = opener.lstrip("rRbBuUfF")
    if "f" not in opener[: len(opener) - len(quote)].lower():
        return False
    for child in string.children:
        if child.type == "interpolation":
            body = child.text.decode("utf-8", "replace")
            if quote in body or "\\" in body or (len(quote) == 1 and "\n" in body):
                return True
    return False


def _newer_construct(root: Any, row: int) -> str | None:
    caps = _captures(NEWER_QUERY, root, row)
    for name in ("type_alias", "type_parameters"):
        if caps.get(name):
            return name
    strings = [s for s in caps.get("string", []) if s.parent is not None]
    # implicitly concatenated f-strings: CPython 3.11 reports the error on the last line of the run
    strings += [sib for s in strings if s.parent.type == "concatenated_string" for sib in s.parent.children]
    return "fstring_pep701" if any(_pep701_fstring(s) for s in strings) else None


def python_dialect(text: str, err: SyntaxError) -> tuple[str, str] | None:
    """``(PYTHON2 | NEWER, construct)`` when ``err`` comes from Python 2 code or from newer grammar, else None.

    The verdict needs three things: the whole file parses with tree-sitter's Python grammar (a
    union of 2 and 3; ERROR nodes only on Python 2 ``exec`` lines that it does not cover), the line
    CPython fails on holds a construct of that dialect, and the file holds nothing of the other
    side (Python 3-only grammar for PYTHON2, Python 2-only grammar for NEWER). A broken file, or
    a file with f-strings or annotations and one stray ``print "x"``, stays a plain parse error.
    Known gaps: Python 2 that uses ``async``/``await``/``True`` as names (tree-sitter rejects it)
    and ``"\\u"`` in byte-string literals stay plain; indentation tree-sitter tolerates but
    Python 2 did not can make a broken file read as Python 2.
    """
    if not err.lineno:
        return None
    root = _parser("python").parse(text.encode("utf-8", "surrogatepass")).root_node
    exec_rows: set[int] = set()
    if root.has_error:
        lines = text.split("\n")
        bad = _error_rows(root)
        exec_rows = {r for r in bad if r < len(lines) and EXEC_LINE.match(lines[r])}
        if bad != exec_rows:
            return None
    row = err.lineno - 1
    py2 = "exec_statement" if row in exec_rows else next(iter(_captures(PYTHON2_QUERY, root, row)), None)
    if py2 is not None:
        py3 = _captures(PYTHON3_QUERY, root)
        if "print_function" in text:  # print(x, file=f) is Python 2 after from __future__ import print_function
            py3.pop("print_call", None)
        return None if py3.get("py3") or py3.get("print_call") else (PYTHON2, py2)
    newer = _newer_construct(root, row)
    if newer is None or exec_rows or _captures(PYTHON2_QUERY, root):
        return None
    return NEWER, newer


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


def parse_error(doc: dict, cfg: ParseConfig) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``doc`` does not parse, or None (also None for languages not checked).

    The reason is ``parse_error``, or for Python ``parse_error:python2`` / ``parse_error:python_newer``.
    """
    lang = doc["lang"]
    if lang not in cfg.languages:
        return None
    if lang == "Python":
        return python_verdict(doc["content"], doc["path"] or "<doc>")
    grammars = GRAMMARS[lang]
    if lang == "TypeScript" and doc["path"].endswith(".tsx"):
        grammars = ("tsx",)
    tolerance = cfg.error_fraction_overrides.get(lang, cfg.max_error_fraction)
    detail = tree_sitter_error(doc["content"], grammars, tolerance)
    return None if detail is None else (PARSE_ERROR, detail)
