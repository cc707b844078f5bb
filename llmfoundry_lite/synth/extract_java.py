"""Documented Java methods (tree-sitter ``java``).

Which functions: every method with a body right after a ``/** ... */`` Javadoc comment
(``extract_treesitter.doc_comment``) in a class, interface (default and static methods), enum or record body,
nested types too; methods of local and anonymous classes are part of their method's body.
Constructors, abstract and interface methods without a body are not functions. A ``void`` method is
found like any other and dropped as ``no_return``. The prompt's code starts after the method's
annotations (``@Override``), like Python's decorators; the other modifiers are kept.

Unsafe (``SourceFunction.unsafe``): a single-type import the method uses, or a name it uses from a
wildcard import, of ``java.io.File*``, ``java.nio.file``, ``java.net``, ``Runtime`` / ``Process*`` or
``System.exit``; or, in its code (comments and string contents not counted), a qualified
``java.io.File*`` / ``java.nio.file`` / ``java.net`` name, ``Runtime``, ``ProcessBuilder``,
``System.exit`` or ``Class.forName``.
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

TYPES = frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"})
BODIES = frozenset({"class_body", "interface_body", "enum_body", "enum_body_declarations"})
COMMENTS = frozenset({"block_comment", "line_comment"})
ANNOTATIONS = frozenset({"annotation", "marker_annotation"})
SCOPES = frozenset({"lambda_expression", "class_body", "class_declaration", "record_declaration",
                    "enum_declaration", "interface_declaration"})
LITERALS = frozenset({"decimal_integer_literal", "hex_integer_literal", "octal_integer_literal",
                      "binary_integer_literal", "decimal_floating_point_literal", "hex_floating_point_literal",
                      "string_literal", "character_literal", "text_block", "true", "false", "null_literal"})
NAMES = frozenset({"identifier", "type_identifier"})
MASKED = frozenset({"block_comment", "line_comment", "string_fragment", "escape_sequence", "multiline_string_fragment"})
UNSAFE_IMPORT = re.compile(r"java\.io\.(?:File\w*|RandomAccessFile)$|java\.nio\.file\.|java\.net\."
                           r"|java\.lang\.(?:Runtime|Process\w*)$|java\.lang\.System\.exit$")
# Wildcard-imported packages -> the classes of them whose use is unsafe.
UNSAFE_WILDCARD = {
    "java.io": frozenset({"File", "FileInputStream", "FileOutputStream", "FileReader", "FileWriter",
                          "FileDescriptor", "RandomAccessFile"}),
    "java.nio.file": frozenset({"Files", "Path", "Paths", "FileSystem", "FileSystems"}),
    "java.net": frozenset({"URL", "URLConnection", "HttpURLConnection", "Socket", "ServerSocket",
                           "DatagramSocket", "InetAddress", "URLClassLoader"}),
}
_UNSAFE_CODE = re.compile(r"(?<![\w$.])(?:java\s*\.\s*io\s*\.\s*(?:File\w*|RandomAccessFile)|java\s*\.\s*nio\s*\."
                          r"\s*file\b|java\s*\.\s*net\b|Runtime\b|ProcessBuilder\b|System\s*\.\s*exit\b"
                          r"|Class\s*\.\s*forName\b)")


def imports(root: Any) -> tuple[dict[str, str], set[str]]:
    """Simple name -> qualified name of each single-type (or static) import, and the wildcard-imported packages."""
    single: dict[str, str] = {}
    wildcard: set[str] = set()
    for stmt in root.named_children:
        if stmt.type != "import_declaration":
            continue
        target = next((n for n in stmt.named_children if n.type in ("scoped_identifier", "identifier")), None)
        if target is None:
            continue
        qualified = re.sub(r"\s+", "", decode(target.text))
        if any(n.type == "asterisk" for n in stmt.named_children):
            wildcard.add(qualified)
        else:
            single[qualified.rsplit(".", 1)[-1]] = qualified
    return single, wildcard


def _methods(body: Any, cls: str) -> list[tuple[Any, str]]:
    found = []
    for child in body.named_children:
        if child.type == "method_declaration":
            found.append((child, cls))
        elif child.type in TYPES:
            found += _type_members(child, cls)
        elif child.type in BODIES:  # an enum's constants come before its enum_body_declarations
            found += _methods(child, cls)
    return found


def _type_members(decl: Any, outer: str | None) -> list[tuple[Any, str]]:
    name = decl.child_by_field_name("name")
    cls = decode(name.text) if name is not None else "?"
    cls = f"{outer}.{cls}" if outer else cls
    body = decl.child_by_field_name("body")
    return _methods(body, cls) if body is not None else []


def _start(method: Any) -> Any:
    """The method's first token that is not an annotation: where the prompt's code starts."""
    children = method.children
    modifiers = children[0] if children and children[0].type == "modifiers" else None
    if modifiers is None:
        return method
    rest = [c for c in modifiers.children if c.type not in ANNOTATIONS | COMMENTS]
    if rest:
        return rest[0]
    return next((c for c in children[1:] if c.type not in COMMENTS), method)


def _value(stmt: Any) -> Any | None:
    return next((c for c in stmt.named_children if c.type not in COMMENTS), None)


def _is_literal(node: Any) -> bool:
    if node.type in LITERALS:
        return True
    if node.type == "unary_expression":
        return node.child(0).type in ("-", "+") and _is_literal(node.named_children[-1])
    return False


def _trivial(body: Any) -> bool:
    stmts = [s for s in body.named_children if s.type not in COMMENTS]
    if len(stmts) == 1 and stmts[0].type == "return_statement" and _value(stmts[0]) is not None:
        return _is_literal(_value(stmts[0]))
    return all(s.type in (";", "throw_statement") for s in stmts)


def _returns_value(body: Any) -> bool:
    return any(n.type == "return_statement" and (v := _value(n)) is not None and v.type != "null_literal"
               for n in own_nodes(body, SCOPES))


def _parameters(method: Any) -> int:
    params = method.child_by_field_name("parameters")
    return sum(1 for p in params.named_children if p.type in ("formal_parameter", "spread_parameter")) \
        if params is not None else 0


def unsafe_use(method: Any, single: dict[str, str], wildcard: set[str]) -> str | None:
    """What makes ``method`` unsafe to run (see the module docstring), or None."""
    names = identifiers(method, NAMES)
    used = sorted(single[n] for n in names & single.keys() if UNSAFE_IMPORT.match(single[n]))
    if used:
        return f"uses import of {used[0]}"
    for package in sorted(wildcard & UNSAFE_WILDCARD.keys()):
        hit = sorted(names & UNSAFE_WILDCARD[package])
        if hit and hit[0] not in single:
            return f"uses {package}.{hit[0]} (wildcard import)"
    hit = _UNSAFE_CODE.search(masked(method, MASKED))
    return "uses " + re.sub(r"\s+", "", hit.group()) if hit else None


def extract_java(text: str, path: str = "") -> list[SourceFunction]:
    """Every documented method of Java source ``text`` with a body, in source order."""
    data, root = parse(text, "java")
    single, wildcard = imports(root)
    found = []
    for method, cls in [m for decl in root.named_children if decl.type in TYPES for m in _type_members(decl, None)]:
        comment = doc_comment(method, data, COMMENTS)
        body = method.child_by_field_name("body")
        if comment is None or body is None:
            continue
        start = _start(method)
        code, response, inline = split_function(data, start.start_byte, body)
        name = method.child_by_field_name("name")
        names = identifiers(method, NAMES)
        found.append(SourceFunction(
            language="Java", qualname=f"{cls}.{decode(name.text) if name is not None else '?'}",
            lineno=start.start_point[0] + 1, class_name=cls, code=code, body=response,
            docstring=clean_doc_comment(decode(comment.text)),
            inline=inline or comment.end_point[0] == method.start_point[0], expression_body=False,
            parameters=_parameters(method), body_lines=inner_lines(data, body), trivial=_trivial(body),
            returns_value=_returns_value(body), has_error=method.has_error,
            unsafe=unsafe_use(method, single, wildcard),
            used_modules=tuple(sorted(single[n] for n in names & single.keys()))))
    return found
