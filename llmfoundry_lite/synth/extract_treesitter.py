"""Documented JavaScript / TypeScript / Java functions as (prompt, response) text, read with tree-sitter.

The languages' own finders are ``extract_js.py`` (JavaScript, TypeScript, TSX) and ``extract_java.py``;
this module holds what they share: the ``SourceFunction`` record, cleaning of ``/** ... */`` doc
comments, the split of a function into prompt code and response, and the prompt format.

A function is documented when the node right before its declaration (decorators skipped) is a
``/** ... */`` comment with no blank line between them. The cleaned comment (``clean_doc_comment``:
``/**``, ``*/`` and each line's leading ``*`` removed, ``@param`` / ``@return`` lines kept) is the
instruction, like a Python docstring. The prompt (``format_source_prompt``), for a JavaScript ``f``::

    Write the body of the following JavaScript function.

    Split `text` into words.
    @param {string} text

    ```javascript
    export function f(text) {
    ```

(methods: ``Write the body of the following method of the Java class `Outer.Inner`.``). The code block
holds the declaration as written from its first token (``export``, ``const``, modifiers; decorators and
Java annotations left out, like Python's decorators) through the body's opening ``{``. The response is
the rest of the block: from the line after the ``{`` (leading blank lines dropped) through the closing
``}``, so ``code_of_prompt(prompt) + response`` is the function as written (``program``); text after the
``}`` (a ``;``) belongs to neither. Both are dedented by the declaration line's indentation. When code
other than a ``//`` comment follows the ``{`` on its line, or the comment shares the declaration's line, no clean split exists
(``inline``). Imports are not shown; no tests are mined for these languages.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmfoundry_lite.synth.extract import fenced, normalize_newlines

FUNCTION_HEADER = "Write the body of the following {language} function."
METHOD_HEADER = "Write the body of the following method of the {language} class `{cls}`."
FENCE_TAGS = {"JavaScript": "javascript", "TypeScript": "typescript", "Java": "java"}
_INDENT = re.compile(rb"[ \t]*")
_COMMENT_LINE = re.compile(r"\s*(?://|/\*|\*)")


@dataclass(frozen=True, eq=False)
class SourceFunction:
    """One documented function of a brace language: its pair's text and the facts the checks need."""

    language: str
    """``JavaScript``, ``TypeScript`` or ``Java`` (The Stack's names)."""
    qualname: str
    """``name``, ``Class.name`` for a method, the assigned target for ``exports.f = function ...``."""
    lineno: int
    """Line (1-based) of the declaration's first token in the newline-normalized document."""
    class_name: str | None
    """Qualified name of the enclosing class, None outside classes."""
    code: str
    """The prompt's code block: the declaration through the body's ``{``; dedented, ends with a newline."""
    body: str
    """The response: the block after the ``{`` line through the closing ``}``, ends with a newline."""
    docstring: str
    """The cleaned doc comment (``clean_doc_comment``): the instruction."""
    inline: bool
    """The comment shares the declaration's line, or code follows the ``{``: no clean split exists."""
    expression_body: bool
    """An arrow function whose body is an expression, not a ``{...}`` block."""
    parameters: int
    """Declared parameters (a ``this`` / receiver parameter not counted)."""
    body_lines: int
    """Code lines inside the braces: not blank, not comment-only."""
    trivial: bool
    """The block is empty, only throws / ``;``, or returns one literal."""
    returns_value: bool
    """A ``return <value>`` (not ``null`` / ``undefined``) in the function itself, nested functions not counted."""
    has_error: bool
    """tree-sitter put an ERROR or MISSING node inside the declaration."""
    unsafe: str | None
    """What makes the function unsafe (``imports fs``, ``uses System.exit``), or None."""
    used_modules: tuple[str, ...] = ()
    """Modules (JS) / imported classes (Java) of the file's imports that the function uses, sorted."""

    @property
    def program(self) -> str:
        """The function as written: ``code + body``."""
        return self.code + self.body


@functools.cache
def parser(grammar: str) -> Any:
    """The tree-sitter parser of ``grammar`` (``tree_sitter_language_pack``, bundled, offline)."""
    from tree_sitter_language_pack import get_parser

    return get_parser(grammar)


def parse(text: str, grammar: str) -> tuple[bytes, Any]:
    """``text`` with newlines normalized, as UTF-8 bytes, and its tree-sitter root node."""
    data = normalize_newlines(text).encode("utf-8", "surrogatepass")
    return data, parser(grammar).parse(data).root_node


def decode(data: bytes) -> str:
    """Inverse of the encoding in ``parse`` (lone surrogates survive)."""
    return data.decode("utf-8", "surrogatepass")


def clean_doc_comment(comment: str) -> str:
    """The text of a ``/** ... */`` comment: delimiters, each line's leading ``*`` and one space removed."""
    inner = comment[3:-2] if comment.endswith("*/") and len(comment) >= 5 else comment[3:]
    lines = []
    for line in inner.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("*"):
            stripped = stripped[1:]
            stripped = stripped[1:] if stripped.startswith(" ") else stripped
        lines.append(stripped.rstrip())
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def doc_comment(node: Any, data: bytes, comment_types: frozenset[str],
                skip: frozenset[str] = frozenset()) -> Any | None:
    """The ``/** ... */`` comment node right before ``node`` of document ``data`` (``skip`` types between), or None.

    A blank line between the comment and what follows it detaches it."""
    first, prev = node, node.prev_named_sibling
    while prev is not None and prev.type in skip:
        first, prev = prev, prev.prev_named_sibling
    if prev is None or prev.type not in comment_types or not prev.text.startswith(b"/**"):
        return None
    if prev.text.startswith(b"/**/"):
        return None
    gap = data[prev.end_byte:first.start_byte]
    return prev if not gap.strip() and gap.count(b"\n") <= 1 else None


def _dedent(lines: list[bytes], indent: bytes) -> str:
    return "".join(decode(line[len(indent):] if line.startswith(indent) else line.strip() and line) + "\n"
                   for line in lines)


def split_function(data: bytes, start: int, body: Any) -> tuple[str, str, bool]:
    """``(code, response, inline)`` of the function from byte ``start`` whose body node is ``body``.

    A ``//`` comment after the ``{`` stays on the code's last line; a body that is not a ``{...}`` block
    (an arrow's expression) is the response as a whole."""
    line_start = data.rfind(b"\n", 0, start) + 1
    lead = data[line_start:start]
    indent = lead if not lead.strip() else _INDENT.match(lead).group()
    cut = body.start_byte + 1 if data[body.start_byte:body.start_byte + 1] == b"{" else body.start_byte
    first, newline, rest = data[cut:body.end_byte].partition(b"\n")
    if first.lstrip().startswith(b"//") and newline:  # a comment after the ``{`` stays with the signature
        cut, first = cut + len(first), b""
    code = data[start:cut].split(b"\n")
    inline = bool(first.strip()) or not newline
    lines = (rest if not inline else data[cut:body.end_byte].lstrip()).split(b"\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    return decode(code[0]) + "\n" + _dedent(code[1:], indent), _dedent(lines, indent) if lines else "", inline


def code_lines(text: str) -> int:
    """Lines that are neither blank nor only a comment (``//``, ``/*``, ``*``)."""
    return sum(1 for line in text.split("\n") if line.strip() and not _COMMENT_LINE.match(line))


def inner_lines(data: bytes, body: Any) -> int:
    """``code_lines`` strictly inside a ``{...}`` block."""
    return code_lines(decode(data[body.start_byte + 1:body.end_byte - 1]))


def own_nodes(node: Any, scopes: frozenset[str]) -> Iterator[Any]:
    """Descendants of ``node``, not descending into nodes of ``scopes`` (nested functions, classes)."""
    stack = list(node.named_children)
    while stack:
        child = stack.pop()
        yield child
        if child.type not in scopes:
            stack.extend(child.named_children)


def masked(node: Any, types: frozenset[str]) -> str:
    """``node``'s text with the nodes of ``types`` (comments, string contents) blanked out."""
    text = bytearray(node.text)
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type in types:
            text[n.start_byte - node.start_byte:n.end_byte - node.start_byte] = b" " * (n.end_byte - n.start_byte)
        else:
            stack.extend(n.children)
    return decode(bytes(text))


def identifiers(node: Any, types: frozenset[str]) -> set[str]:
    """Texts of the descendants of ``node`` of ``types`` (identifier node types)."""
    found, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n.type in types:
            found.add(decode(n.text))
        stack.extend(n.children)
    return found


def format_source_prompt(fn: SourceFunction) -> str:
    """The instruction: a header, the cleaned doc comment, then ``fn.code`` in a fence tagged with the language."""
    template = METHOD_HEADER if fn.class_name else FUNCTION_HEADER
    header = template.format(language=fn.language, cls=fn.class_name)
    return f"{header}\n\n{fn.docstring}\n\n{fenced(fn.code, FENCE_TAGS[fn.language])}"


def code_of_source_prompt(prompt: str) -> str:
    """The code block of a prompt made by :func:`format_source_prompt` (everything after its last fence line)."""
    head, sep, tail = prompt.rstrip("\n").rpartition("\n\n```")
    if not sep:
        raise ValueError("not a prompt of format_source_prompt: no code fence")
    fence_line, _, rest = ("```" + tail).partition("\n")
    fence = fence_line.rstrip("abcdefghijklmnopqrstuvwxyz")
    if not rest.endswith(fence):
        raise ValueError("not a prompt of format_source_prompt: unterminated code fence")
    return rest.removesuffix(fence)
