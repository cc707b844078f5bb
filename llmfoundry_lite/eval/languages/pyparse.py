"""Read one HumanEval problem (prompt + ``check`` source) into a ``PyProblem`` (see ``pymodel``)."""

from __future__ import annotations

import ast

from llmfoundry_lite.eval.languages.pymodel import (
    PyProblem,
    Test,
    Ty,
    Untranslatable,
    annotation_type,
    literal,
    require_known,
    unify,
    value_type,
)


def _candidate_args(node: ast.expr) -> tuple | None:
    """The literal arguments when ``node`` is ``candidate(...)`` (optionally inside ``tuple()``)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tuple" and len(node.args) == 1:
        node = node.args[0]
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "candidate"):
        return None
    if node.keywords:
        raise Untranslatable("keyword arguments")
    return tuple(literal(a) for a in node.args)


def _expected(node: ast.expr) -> object:
    """An expectation literal; ``tuple([...])`` compares as the list inside it."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tuple" and len(node.args) == 1:
        value = literal(node.args[0])
        return list(value) if isinstance(value, (list, tuple)) else value
    return literal(node)


def _test_of(expr: ast.expr) -> Test | None:
    """The ``Test`` an assert expresses, or None for ``assert True`` style no-ops."""
    if isinstance(expr, ast.Constant):
        return None
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not) and (args := _candidate_args(expr.operand)) is not None:
        return Test(args, False)
    if (args := _candidate_args(expr)) is not None:
        return Test(args, True)
    if isinstance(expr, ast.Compare) and len(expr.ops) == 1:
        op, left, right = expr.ops[0], expr.left, expr.comparators[0]
        if isinstance(op, (ast.Eq, ast.Is)) and (args := _candidate_args(left)) is not None:
            expected = _expected(right)
            if isinstance(op, ast.Is) and not isinstance(expected, bool):
                raise Untranslatable("an 'is' test against a non-boolean")
            as_sequence = isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "tuple"
            return Test(args, list(expected) if as_sequence and isinstance(expected, tuple) else expected)
        if (isinstance(op, ast.Lt) and isinstance(left, ast.Call) and isinstance(left.func, ast.Name)
                and left.func.id == "abs" and len(left.args) == 1 and isinstance(left.args[0], ast.BinOp)
                and isinstance(left.args[0].op, ast.Sub)):  # fmt: skip
            args = _candidate_args(left.args[0].left)
            if args is not None:
                return Test(args, literal(left.args[0].right), tolerance=float(literal(right)))
    raise Untranslatable(f"not a literal assertion: {ast.unparse(expr)}")


def parse_tests(test_source: str, arity: int) -> tuple[list[Test], list[str]]:
    """The literal tests of ``check`` (calls with ``arity`` arguments) and the source of every
    statement that was dropped."""
    module = ast.parse(test_source)
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise Untranslatable("no check() function in the tests")
    tests, dropped = [], []
    for statement in checks[0].body:
        try:
            if not isinstance(statement, ast.Assert):
                raise Untranslatable("not an assert")
            test = _test_of(statement.test)
            if test is not None and len(test.args) != arity:
                raise Untranslatable(f"calls candidate with {len(test.args)} arguments, not {arity}")
        except (Untranslatable, ArithmeticError, TypeError):  # this statement only: listed in ``dropped``
            dropped.append(ast.unparse(statement).split("\n")[0])
            continue
        if test is not None:
            tests.append(test)
    return tests, dropped


def _entry_function(prompt: str, entry_point: str) -> ast.FunctionDef:
    module = ast.parse(prompt + "    pass\n")
    functions = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    entry = [f for f in functions if f.name == entry_point]
    if not entry:
        raise Untranslatable(f"the prompt defines no function {entry_point}()")
    for helper in functions:
        if helper.name != entry_point:
            raise Untranslatable(f"the prompt defines helper {helper.name}() whose Python body would need translating")
    return entry[-1]


def _infer(hints: tuple[list[Ty], Ty], tests: list[Test]) -> tuple[list[Ty], Ty]:
    """Parameter and return types: the hints unified with every test's values."""
    param_types, return_type = hints
    for t in tests:
        param_types = [unify(p, value_type(v)) for p, v in zip(param_types, t.args, strict=True)]
        return_type = unify(return_type, value_type(t.expected))
    return param_types, return_type


def _fits(hints: tuple[list[Ty], Ty], tests: list[Test]) -> bool:
    try:
        _infer(hints, tests)
    except Untranslatable:
        return False
    return True


def parse_problem(problem: dict) -> PyProblem:
    """Signature, types (hints unified with the test values), docstring and literal tests."""
    fn = _entry_function(problem["prompt"], problem["entry_point"])
    if fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs:
        raise Untranslatable("variadic or keyword-only parameters")
    params = [a.arg for a in fn.args.args]
    tests, dropped = parse_tests(problem["test"], len(params))
    if not tests:
        raise Untranslatable(f"no literal test ({len(dropped)} dropped: {'; '.join(dropped)[:120]})")
    hints = ([annotation_type(a.annotation) for a in fn.args.args], annotation_type(fn.returns))
    try:
        param_types, return_type = _infer(hints, tests)
    except Untranslatable as conflict:  # one odd test (e.g. [] passed for a str) is dropped, not the problem
        fits = [i for i in range(len(tests)) if _fits(hints, tests[:i] + tests[i + 1 :])]
        if len(fits) != 1:
            raise conflict from None
        odd = tests.pop(fits[0])
        dropped.append(f"candidate{odd.args!r} == {odd.expected!r} (its types conflict with every other test)")
        param_types, return_type = _infer(hints, tests)
    for name, t in zip(params, param_types, strict=True):
        require_known(t, f"parameter {name}")
    require_known(return_type, "the return value")
    docstring = ast.get_docstring(fn) or ""
    raw = fn.body[0].value.value if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else ""
    return PyProblem(problem["task_id"], fn.name, params, param_types, return_type, docstring, tests, dropped,
                     raw if isinstance(raw, str) else "")  # fmt: skip
