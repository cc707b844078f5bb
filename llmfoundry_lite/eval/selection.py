"""``--select vote``: pick one of n samples per problem by agreement on the prompt's own examples.

Each sample is run (sandboxed, like any sample) on the inputs of its prompt's docstring
examples (every call of the entry point with literal arguments: ``>>> f(1)`` lines and prose
such as ``f(1) == 2``; 141 of HumanEval's 164 problems have one). Its behaviour is, per input,
the ``repr`` it returned, the exception it raised, or, for inputs the program never reached,
its verdict (``timed out``); samples that behave identically form a group (what a sample prints
itself is not part of it). The group chosen is, in order (AlphaCode's clustering, CodeT's
agreement with stated outputs):

1. one that *works*: it returns on at least one example input. Samples that raise or time out
   on every input win only when no sample of the problem works (counted); then rules 3-4 apply;
2. the one that returns the most of the outputs the docstring states (the line after a ``>>>``
   call, doctest-style, or the literal after ``==``, ``➞``, ``=>``, ``->``, ``returns``, ``should
   return`` …; compared as values, floats to 1e-6). A count, not all-or-nothing: docstrings err
   (HumanEval's reference solutions return 392 of the 400 outputs its docstrings state), and the
   group that agrees with the rest must still win;
3. the largest;
4. the one whose first sample came first, so the choice is deterministic.

The first sample of that group is selected. No test is consulted, so this is a selection a
deployed system could make itself; its pass@1 is reported next to plain pass@1 and pass@n. A
problem whose docstring has no example selects its first sample; those problems are counted.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmfoundry_lite.eval.languages.pymodel import Untranslatable, literal
from llmfoundry_lite.sandbox import ExecResult, Sandbox

MAX_CALL_CHARS = 4000
"""Longest example call looked for in a docstring."""
RESULT_MARK = "@@vote-result@@ "
"""Starts the probe's line for each example input, so the sample's own prints are not read as results."""
_STATED = re.compile(r"[ \t]*(?:#[ \t]*)?(?:==>|==|=>|->|➞|=|returns|should\s+return)[ \t]*")
"""What separates a prose example call from the output it states: ``f(1) ➞ 2``, ``f(1) # => 2``."""
_LITERAL_OPS = {"+", "-", "*", "/", "(", "[", "{", ")", "]", "}"}
_OPENERS, _CLOSERS = "([{", ")]}"


def _calls_of(name: str, text: str) -> Iterator[tuple[ast.Call, int, int]]:
    """Every complete call ``name(...)`` written in ``text`` (one line or several) with its start and
    end offsets; for each occurrence the shortest source that parses as an expression, so parentheses
    inside string arguments (``correct_bracketing("(()")``) do not cut a call short."""
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\(", text):
        for close in re.finditer(r"\)", text[m.end() - 1 : m.end() - 1 + MAX_CALL_CHARS]):
            end = m.end() + close.end() - 1
            try:
                node = ast.parse(text[m.start() : end], mode="eval").body
            except SyntaxError:
                continue
            if isinstance(node, ast.Call):
                yield node, m.start(), end
            break


def _leading_literal(text: str) -> Any:
    """The longest literal written at the start of ``text`` up to the end of its line (brackets may
    span lines): ``2 # note`` → 2, ``19 - 5 - 6 = 8`` → 8, ``'No' (the name …)`` → 'No'. Raises
    ``ValueError`` when there is none (``true``, ``fib4(n-1) + …``)."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    depth, ends = 0, []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if depth == 0 and not (
                tok.type in (tokenize.NUMBER, tokenize.STRING)
                or (tok.type == tokenize.NAME and tok.string in ("True", "False", "None"))
                or (tok.type == tokenize.OP and tok.string in _LITERAL_OPS)
            ):
                break  # the end of the line, a comment, ``=``, ``,``, a word: the literal is over
            depth += (tok.string in _OPENERS) - (tok.string in _CLOSERS) if tok.type == tokenize.OP else 0
            if depth < 0:
                break
            if depth == 0:
                ends.append(offsets[tok.end[0] - 1] + tok.end[1])
    except (tokenize.TokenError, SyntaxError):
        pass  # an unclosed bracket or string further on: the prefixes read so far still count
    for end in reversed(ends):
        try:
            return literal(ast.parse(text[:end], mode="eval").body)
        except (SyntaxError, Untranslatable, ArithmeticError, TypeError):
            continue
    raise ValueError(f"no literal at {text[:40]!r}")


def _stated_output(docstring: str, start: int, end: int) -> Any:
    """The output the docstring states for the call at ``docstring[start:end]``: doctest-style (the
    lines after a ``>>>`` call up to a blank line, the next ``>>>`` or the docstring's end; none
    means ``None``) or prose (``f(1) == 2``). Raises ``ValueError`` when it states none."""
    line_start = docstring.rfind("\n", 0, start) + 1
    before = docstring[line_start:start].strip()
    line_end = docstring.find("\n", end)
    line_end = len(docstring) if line_end < 0 else line_end
    if before == ">>>" and not docstring[end:line_end].strip():
        expected = []
        for line in docstring[line_end + 1 :].split("\n"):
            line = line.strip()
            if not line or line.startswith((">>>", '"""', "'''")):
                break
            expected.append(line)
        return literal(ast.parse(" ".join(expected), mode="eval").body) if expected else None
    if before and before not in ("*", "-", ">>>") and before[-1] in "+-*/%([{,=<>&|^~.@":
        raise ValueError("the call is part of a larger expression")  # ``round(f(x), 2)``, ``1 + f(2)``
    stated = _STATED.match(docstring, end)
    if stated is None:
        raise ValueError("no output stated")
    return _leading_literal(docstring[stated.end() :])


def _examples(problem: dict) -> tuple[list[tuple], dict[int, Any]]:
    """``example_inputs`` and ``expected_outputs`` in one pass over the docstring."""
    entry = problem["entry_point"]
    prompt = problem["prompt"]
    at = prompt.find(f"def {entry}(")
    docstring = prompt[at + len(f"def {entry}(") :] if at >= 0 else prompt  # the signature is no example
    inputs: list[tuple] = []
    expected: dict[int, Any] = {}
    for node, start, end in _calls_of(entry, docstring):
        try:
            args = tuple(literal(a) for a in node.args)
        except (Untranslatable, ArithmeticError, TypeError):
            continue
        if node.keywords:
            continue
        if args not in inputs:
            inputs.append(args)
        index = inputs.index(args)
        if index not in expected:  # a repeated call: the first output stated counts
            try:
                expected[index] = _stated_output(docstring, start, end)
            except (ValueError, SyntaxError, Untranslatable, ArithmeticError, TypeError):
                pass  # this call states no output (or none we can read): it still gives an input
    return inputs, expected


def example_inputs(problem: dict) -> list[tuple]:
    """Literal arguments of every distinct call of the entry point in its docstring, in order:
    ``>>> f(1)`` lines as well as prose examples (``f(1) == 2``, ``f(1) ➞ 2``, ``f(1) should
    return 2``). Calls with any non-literal argument (``f(n)``) cannot be replayed: skipped."""
    return _examples(problem)[0]


def expected_outputs(problem: dict) -> dict[int, Any]:
    """The outputs the docstring states, by position in ``example_inputs(problem)``; inputs whose
    call states none (``round(f(x), 2)``, ``f(x) => true``, ``f(n) = …``) are absent."""
    return _examples(problem)[1]


def probe_program(problem: dict, completion: str, inputs: list[tuple]) -> str:
    """The sample's function, then one ``RESULT_MARK`` line per example input: ``returned <repr>``
    or ``raised <exception type>``, flushed so that a later timeout keeps the earlier results."""
    return (f"{problem['prompt']}{completion}\n\nfor _args in {inputs!r}:\n    try:\n"
            f"        _result = 'returned ' + repr({problem['entry_point']}(*_args))\n"
            "    except BaseException as _e:\n        _result = 'raised ' + type(_e).__name__\n"
            f"    print('\\n' + {RESULT_MARK!r} + _result, flush=True)\n")  # fmt: skip


def behaviour(outcome: ExecResult, n_inputs: int) -> tuple[str, ...]:
    """Per example input what the probe reported, or the program's verdict for the inputs it never
    reached (``timed out``, ``failed: …`` when the sample does not even load)."""
    got = [line[len(RESULT_MARK) :] for line in outcome.output.split("\n") if line.startswith(RESULT_MARK)]
    got = got[:n_inputs]
    return (*got, *[outcome.result if not outcome.passed else "not reached"] * (n_inputs - len(got)))


class _Unreadable:
    """A returned ``repr`` that is no literal: equal to no stated output."""


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _Unreadable()


def _same(got: Any, expected: Any) -> bool:
    """Value equality as a docstring means it: ``True`` is not ``1``, a list is not a tuple, numbers
    agree to 1e-6 (``6.00`` states 6.0, ``16.`` states 16)."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(got, int) and isinstance(expected, int):
        return got == expected  # exact, and no float conversion to overflow
    if isinstance(got, int | float) and isinstance(expected, int | float):
        try:
            return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
        except OverflowError:  # an int beyond float's range is not close to any float
            return False
    if isinstance(got, list | tuple) and type(got) is type(expected):
        return len(got) == len(expected) and all(map(_same, got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in got)
    return type(got) is type(expected) and got == expected


def works(behaved: tuple[str, ...]) -> bool:
    """Whether the sample returned on at least one example input."""
    return any(b.startswith("returned ") for b in behaved)


def matches(behaved: tuple[str, ...], expected: dict[int, Any]) -> int:
    """How many of the docstring's stated outputs the sample returned."""
    returned = "returned "
    return sum(behaved[i].startswith(returned) and _same(_value(behaved[i][len(returned) :]), want)
               for i, want in expected.items())  # fmt: skip


def select(behaviours: list[tuple[str, ...]], expected: dict[int, Any]) -> int:
    """The index of the selected sample: the first of the group ranked first by (works, stated
    outputs matched, size, earliest first sample); the module docstring gives the reasons."""
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, behaved in enumerate(behaviours):
        groups[behaved].append(i)

    def rank(group: tuple[tuple[str, ...], list[int]]) -> tuple[bool, int, int, int]:
        behaved, members = group
        return works(behaved), matches(behaved, expected), len(members), -members[0]

    return max(groups.items(), key=rank)[1][0]


def vote(problems: dict[str, dict], results: list[dict], sandbox: Sandbox, workers: int,
         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The selected sample per problem and the pass@1 of the selection.

    ``results`` are the scored samples (``task_id``, ``completion``, ``passed``) in input order.
    """
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_task[r["task_id"]].append(r)
    examples = {t: _examples(problems[t]) for t in by_task}
    jobs = [(t, i, r["completion"]) for t, rs in by_task.items() if examples[t][0] for i, r in enumerate(rs)]

    def run(job: tuple[str, int, str]) -> tuple[str, ...]:
        task, _, completion = job
        inputs = examples[task][0]
        return behaviour(sandbox.run(probe_program(problems[task], completion, inputs)), len(inputs))

    behaved: dict[tuple[str, int], tuple[str, ...]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for n, (job, b) in enumerate(zip(jobs, pool.map(run, jobs), strict=True), 1):
            behaved[(job[0], job[1])] = b
            if progress is not None:
                progress(n, len(jobs))
    selected = {}
    for task, rs in by_task.items():
        selected[task] = select([behaved.get((task, i), ()) for i in range(len(rs))], examples[task][1])
    passed = sum(by_task[t][i]["passed"] for t, i in selected.items())
    any_passed = sum(any(r["passed"] for r in rs) for rs in by_task.values())
    n = len(selected) or 1
    return {"pass@1(vote)": passed / n, "pass@n": any_passed / n, "selected": selected,
            "problems_without_examples": sum(not examples[t][0] for t in by_task),
            "problems_with_stated_outputs": sum(bool(examples[t][1]) for t in by_task),
            "problems_without_a_working_sample": sum(bool(examples[t][0]) and not works(behaved[(t, i)])
                                                     for t, i in selected.items())}  # fmt: skip
