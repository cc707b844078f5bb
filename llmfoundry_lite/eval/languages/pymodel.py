"""What a HumanEval problem says, read from its Python with ``ast``: signature, types, docstring, tests.

Most HumanEval prompts carry no type hints (134 of 164 functions), so a parameter's type is
its hint when there is one, unified with the types of the literal values the tests pass
(``[]`` and ``[1, 2]`` → ``list[int]``; ``1`` and ``2.5`` → ``float``; ``None`` and ``"a"`` →
``optional[str]``). Tests are the ``assert`` statements of ``check``: ``candidate(...) == v``,
``candidate(...) is True``, bare ``candidate(...)`` / ``not candidate(...)``, ``tuple(...)``
wrappers, and ``abs(candidate(...) - v) < tol``; arguments and expectations must be literals
(constant arithmetic such as ``3 * 19`` is folded). Any other statement (a loop, ``random``,
a comparison with a helper) is dropped and listed; a problem with no test left, a helper
function with a body, or an untranslatable type (``Any``, mixed types) raises
``Untranslatable`` with the reason.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from typing import Any


class Untranslatable(ValueError):
    """This problem cannot be translated; the message says why."""


@dataclass(frozen=True)
class Ty:
    """A type: ``int float str bool none unknown`` or ``list dict tuple optional`` over ``args``."""

    kind: str
    args: tuple[Ty, ...] = ()

    def __str__(self) -> str:
        return self.kind if not self.args else f"{self.kind}[{', '.join(map(str, self.args))}]"


UNKNOWN = Ty("unknown")
SCALARS = {"int": Ty("int"), "float": Ty("float"), "str": Ty("str"), "bool": Ty("bool")}
GENERICS = {"List": "list", "list": "list", "Dict": "dict", "dict": "dict", "Tuple": "tuple", "tuple": "tuple",
            "Optional": "optional"}  # fmt: skip


@dataclass(frozen=True)
class Test:
    """One check: ``candidate(*args)`` equals ``expected`` (or is within ``tolerance`` of it)."""

    args: tuple[Any, ...]
    expected: Any
    tolerance: float | None = None


@dataclass
class PyProblem:
    """The parts of one problem a translator needs."""

    task_id: str
    name: str
    params: list[str]
    param_types: list[Ty]
    return_type: Ty
    docstring: str
    tests: list[Test]
    dropped: list[str] = field(default_factory=list)
    """Test statements that were not literal assertions, as source text (counted, not hidden)."""
    raw_docstring: str = ""
    """The docstring exactly as the prompt spells it (indentation kept): MultiPL-E's prompts start from it."""


def annotation_type(node: ast.expr | None) -> Ty:
    """A Python type hint as a ``Ty``; no hint is ``unknown`` (the tests decide)."""
    if node is None:
        return UNKNOWN
    if isinstance(node, ast.Name) and node.id in SCALARS:
        return SCALARS[node.id]
    if isinstance(node, ast.Name) and node.id in GENERICS:
        return Ty(GENERICS[node.id], (UNKNOWN,) * (2 if GENERICS[node.id] == "dict" else 1))
    if isinstance(node, ast.Constant) and node.value is None:
        return Ty("none")
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in GENERICS:
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kind = GENERICS[node.value.id]
        args = tuple(annotation_type(e) for e in elts)
        return Ty("tuple", args) if kind == "tuple" else Ty(kind, args)
    raise Untranslatable(f"untranslatable type {ast.unparse(node)}")


def value_type(value: Any) -> Ty:
    """The type of a literal test value."""
    if isinstance(value, bool):
        return Ty("bool")
    for py, name in ((int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, py):
            return SCALARS[name]
    if value is None:
        return Ty("none")
    if isinstance(value, list):
        return Ty("list", (unify_all(value_type(v) for v in value),))
    if isinstance(value, tuple):
        return Ty("tuple", tuple(value_type(v) for v in value))
    if isinstance(value, dict):
        return Ty("dict", (unify_all(value_type(k) for k in value), unify_all(value_type(v) for v in value.values())))
    raise Untranslatable(f"untranslatable value of type {type(value).__name__}")


def unify_all(types: Any) -> Ty:
    result = UNKNOWN
    for t in types:
        result = unify(result, t)
    return result


def unify(a: Ty, b: Ty) -> Ty:
    """The one type both values fit (int widens to float, None makes optional), else Untranslatable."""
    if a == b:
        return a
    if a.kind == "unknown" or b.kind == "unknown":
        return b if a.kind == "unknown" else a
    if {a.kind, b.kind} == {"int", "float"}:
        return SCALARS["float"]
    if "none" in (a.kind, b.kind):
        other = b if a.kind == "none" else a
        return other if other.kind == "optional" else Ty("optional", (other,))
    if a.kind == "optional" or b.kind == "optional":
        inner = (a.args[0] if a.kind == "optional" else a, b.args[0] if b.kind == "optional" else b)
        return Ty("optional", (unify(*inner),))
    if a.kind == b.kind == "tuple" and len(a.args) == len(b.args):
        return Ty("tuple", tuple(unify(x, y) for x, y in zip(a.args, b.args, strict=True)))
    if {a.kind, b.kind} <= {"list", "tuple"}:  # tuples of several lengths: a sequence
        return Ty("list", (unify_all([*a.args, *b.args]),))
    if a.kind == b.kind and a.kind in ("list", "dict"):
        return Ty(a.kind, tuple(unify(x, y) for x, y in zip(a.args, b.args, strict=True)))
    raise Untranslatable(f"mixed types {a} and {b}")


def require_known(t: Ty, what: str) -> None:
    if t.kind == "unknown":
        raise Untranslatable(f"cannot infer the type of {what} (no hint, only empty or no values)")
    if t.kind == "none":
        raise Untranslatable(f"{what} is always None")
    for arg in t.args:
        require_known(arg, f"an element of {what}")


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}  # fmt: skip
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}


def literal(node: ast.expr) -> Any:
    """A literal value, folding constant arithmetic (``3 * 19``, ``-0``, ``'a' + 'b'``)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {literal(k): literal(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](literal(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = literal(node.left), literal(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(right, int) and right > 64:
            raise Untranslatable(f"exponent too large to fold: {ast.unparse(node)}")
        return _BINOPS[type(node.op)](left, right)
    raise Untranslatable(f"not a literal: {ast.unparse(node)}")
