"""Documented JavaScript and TypeScript functions (tree-sitter ``javascript`` / ``typescript`` / ``tsx``).

Which functions, each right after a ``/** ... */`` comment (``extract_treesitter.doc_comment``): function and
generator declarations at module level, ``export`` / ``export default`` ones, methods of classes
(``class``, ``export class``, TypeScript ``abstract class``; decorators between the comment and the
method are skipped and left out of the prompt), ``const`` / ``let`` / ``var`` declarations whose first
declarator is a function or arrow function, and CommonJS assignments ``exports.f = function ...`` /
``Foo.prototype.f = function ...`` at module level. Functions nested in functions are part of their
parent's body. Bodiless declarations (overloads, interface and abstract methods) are not functions.

Unsafe (``SourceFunction.unsafe``): using a name that a module-level ``import`` / ``require`` binds
from ``UNSAFE_MODULES`` (``node:`` prefix and subpaths such as ``fs/promises`` count), a ``require`` /
``import()`` of one inside the function, or ``process.``, ``eval(``, ``Function(`` in its code
(comments and string contents not counted).
"""

from __future__ import annotations

import re
from typing import Any

from llmfoundry_lite.synth.extract_treesitter import (
    SourceFunction,
    clean_doc_comment,
    decode,
    doc_comment,
    identifiers,
    inner_lines,
    masked,
    own_nodes,
    parse,
    split_function,
)

UNSAFE_MODULES = frozenset({"fs", "child_process", "net", "http", "https", "dgram", "worker_threads", "cluster"})
FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
DECLARATIONS = frozenset({"function_declaration", "generator_function_declaration"})
CLASSES = frozenset({"class_declaration", "abstract_class_declaration"})
VARIABLES = frozenset({"lexical_declaration", "variable_declaration"})
SCOPES = FUNCTION_VALUES | DECLARATIONS | CLASSES | frozenset({"method_definition", "class", "class_body"})
COMMENTS = frozenset({"comment"})
LITERALS = frozenset({"number", "string", "true", "false", "null", "undefined", "regex"})
NULLS = frozenset({"null", "undefined"})
NAMES = frozenset({"identifier", "shorthand_property_identifier", "shorthand_property_identifier_pattern",
                   "type_identifier"})
MASKED = frozenset({"comment", "string_fragment", "escape_sequence", "regex_pattern"})
_REQUIRE = re.compile(r"""\b(?:require|import)\s*\(\s*['"`]([^'"`]+)['"`]""")
_UNSAFE_CODE = re.compile(r"(?<![\w$.])(?:process\s*\.|eval\s*\(|Function\s*\()")


def module_root(spec: str) -> str:
    """``fs`` of ``node:fs/promises``, ``@scope/pkg`` of ``@scope/pkg/sub``, ``.`` of a relative path."""
    spec = spec.removeprefix("node:")
    if spec.startswith("."):
        return "."
    parts = spec.split("/")
    return "/".join(parts[:2]) if spec.startswith("@") else parts[0]


def _required(value: Any) -> str | None:
    """The module of ``require("m")`` (also ``require("m").x``, ``await import("m")``), or None."""
    while value is not None and value.type in ("member_expression", "await_expression", "parenthesized_expression"):
        value = value.named_children[0] if value.named_children else None
    if value is None or value.type != "call_expression":
        return None
    func, args = value.child_by_field_name("function"), value.child_by_field_name("arguments")
    if func is None or func.text not in (b"require", b"import") or args is None:
        return None
    strings = [a for a in args.named_children if a.type == "string"]
    return decode(strings[0].text[1:-1]) if strings else None


def module_bindings(root: Any) -> dict[str, str]:
    """Name bound at module level by an ``import`` or a ``require`` -> root module of its source."""
    bound: dict[str, str] = {}
    for stmt in root.named_children:
        if stmt.type == "export_statement":
            stmt = stmt.child_by_field_name("declaration") or stmt
        if stmt.type == "import_statement":
            source = stmt.child_by_field_name("source")
            strings = [source] if source is not None else [n for n in stmt.named_children if n.type == "string"]
            if not strings:  # TypeScript ``import fs = require("fs")``
                clause = next((n for n in stmt.named_children if n.type == "import_require_clause"), None)
                strings = [n for n in clause.named_children if n.type == "string"] if clause is not None else []
            if strings:
                root_module = module_root(decode(strings[0].text[1:-1]))
                bound.update((name, root_module) for name in identifiers(stmt, frozenset({"identifier"})))
        elif stmt.type in VARIABLES:
            for decl in stmt.named_children:
                module = _required(decl.child_by_field_name("value")) if decl.type == "variable_declarator" else None
                name = decl.child_by_field_name("name") if module is not None else None
                if name is not None:
                    bound.update((n, module_root(module)) for n in identifiers(name, NAMES))
    return bound


def _candidates(container: Any, cls: str | None) -> list[tuple[Any, Any, str | None]]:
    """``(outer, declaration, class)``: ``outer`` is the node the doc comment precedes."""
    found = []
    for child in container.named_children:
        decl = child
        if child.type == "export_statement":
            decl = child.child_by_field_name("declaration") or child.child_by_field_name("value") or child
        if decl.type in CLASSES or (decl.type == "class" and cls is None):
            name = decl.child_by_field_name("name")
            inner = decode(name.text) if name is not None else "default"
            body = decl.child_by_field_name("body")
            if body is not None:
                found += _candidates(body, f"{cls}.{inner}" if cls else inner)
        elif decl.type in DECLARATIONS | VARIABLES | FUNCTION_VALUES | {"method_definition", "expression_statement"}:
            found.append((child, decl, cls))
    return found


def _function_of(decl: Any) -> tuple[str, Any] | None:
    """``(name, function node)`` of a candidate declaration, or None when it declares no function."""
    if decl.type in DECLARATIONS or decl.type == "method_definition":
        name = decl.child_by_field_name("name")
        return (decode(name.text) if name is not None else "default"), decl
    if decl.type in FUNCTION_VALUES:  # ``export default function (...) {...}``
        return "default", decl
    if decl.type in VARIABLES:
        first = next((n for n in decl.named_children if n.type == "variable_declarator"), None)
        value = first.child_by_field_name("value") if first is not None else None
        name = first.child_by_field_name("name") if first is not None else None
        if value is not None and value.type in FUNCTION_VALUES and name is not None and name.type == "identifier":
            return decode(name.text), value
        return None
    expr = decl.named_children[0] if decl.named_children else None
    if expr is not None and expr.type == "assignment_expression":
        left, right = expr.child_by_field_name("left"), expr.child_by_field_name("right")
        if right is not None and right.type in FUNCTION_VALUES and left is not None and left.type == "member_expression":
            return re.sub(r"\s+", "", decode(left.text)), right
    return None


def _parameters(fn: Any) -> int:
    params = fn.child_by_field_name("parameters")
    if params is None:
        return 1 if fn.child_by_field_name("parameter") is not None else 0
    return sum(1 for p in params.named_children
               if p.type not in COMMENTS and p.text != b"this" and not p.text.startswith(b"this:"))


def _is_literal(node: Any) -> bool:
    if node.type in LITERALS or (node.type == "template_string" and
                                 not any(c.type == "template_substitution" for c in node.children)):
        return True
    if node.type == "unary_expression":
        return node.child(0).type in ("-", "+") and _is_literal(node.named_children[-1])
    if node.type == "array":
        return all(_is_literal(c) for c in node.named_children if c.type not in COMMENTS)
    if node.type == "object":
        return all(c.type == "pair" and _is_literal(c.child_by_field_name("value"))
                   for c in node.named_children if c.type not in COMMENTS)
    return False


def _value(stmt: Any) -> Any | None:
    return next((c for c in stmt.named_children if c.type not in COMMENTS), None)


def _trivial(body: Any) -> bool:
    stmts = [s for s in body.named_children if s.type not in COMMENTS]
    if len(stmts) == 1 and stmts[0].type == "return_statement" and _value(stmts[0]) is not None:
        return _is_literal(_value(stmts[0]))
    return all(s.type in ("empty_statement", "throw_statement") for s in stmts)


def _returns_value(body: Any) -> bool:
    return any(n.type == "return_statement" and (v := _value(n)) is not None and v.type not in NULLS
               for n in own_nodes(body, SCOPES))


def unsafe_use(fn: Any, used_modules: tuple[str, ...]) -> str | None:
    """What makes the function node ``fn`` unsafe to run (see the module docstring), or None."""
    used = [m for m in used_modules if m in UNSAFE_MODULES]
    if used:
        return f"uses module-level import of {used[0]}"
    for match in _REQUIRE.finditer(decode(fn.text)):
        if module_root(match.group(1)) in UNSAFE_MODULES:
            return f"imports {module_root(match.group(1))}"
    hit = _UNSAFE_CODE.search(masked(fn, MASKED))
    return "uses " + re.sub(r"\s+", "", hit.group()) if hit else None


def _extract(text: str, grammar: str, language: str) -> list[SourceFunction]:
    data, root = parse(text, grammar)
    bindings = module_bindings(root)
    found = []
    for outer, decl, cls in _candidates(root, None):
        comment = doc_comment(outer, data, COMMENTS, frozenset({"decorator"}))
        named = _function_of(decl) if comment is not None else None
        if named is None or named[1].child_by_field_name("body") is None:
            continue
        name, fn = named
        body = fn.child_by_field_name("body")
        block = body.type == "statement_block"
        code, response, inline = split_function(data, outer.start_byte, body)
        used = tuple(sorted({bindings[n] for n in identifiers(fn, NAMES) if n in bindings}))
        found.append(SourceFunction(
            language=language, qualname=f"{cls}.{name}" if cls else name, lineno=outer.start_point[0] + 1,
            class_name=cls, code=code, body=response, docstring=clean_doc_comment(decode(comment.text)),
            inline=(block and inline) or comment.end_point[0] == outer.start_point[0], expression_body=not block,
            parameters=_parameters(fn), body_lines=inner_lines(data, body) if block else 1,
            trivial=block and _trivial(body), returns_value=block and _returns_value(body),
            has_error=outer.has_error, unsafe=unsafe_use(fn, used), used_modules=used))
    return found


def extract_javascript(text: str, path: str = "") -> list[SourceFunction]:
    """Every documented function of JavaScript source ``text`` (JSX included), in source order."""
    return _extract(text, "javascript", "JavaScript")


def extract_typescript(text: str, path: str = "") -> list[SourceFunction]:
    """Every documented function of TypeScript source ``text`` (the ``tsx`` grammar for ``*.tsx`` paths)."""
    return _extract(text, "tsx" if path.endswith(".tsx") else "typescript", "TypeScript")
