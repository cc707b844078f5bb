"""``--select vote``: pick one of n samples per problem by agreement on the prompt's own examples.

Each sample is run (sandboxed, like any sample) on the inputs of its prompt's docstring
examples (every call of the entry point with literal arguments: ``>>> f(1)`` lines and prose
such as ``f(1) == 2``; 141 of HumanEval's 164 problems have one); samples whose outputs are identical form a group,
and the first sample of the largest group is selected (ties: the group whose first sample came
first). No test is consulted, so this is a selection a deployed system could make itself; its
pass@1 is reported next to plain pass@1 and pass@n. A problem whose docstring has no such
example selects its first sample; those problems are counted.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmfoundry_lite.eval.languages.pymodel import Untranslatable, literal
from llmfoundry_lite.sandbox import Sandbox

MAX_CALL_CHARS = 4000
"""Longest example call looked for in a docstring."""


def _calls_of(name: str, text: str) -> Iterator[ast.Call]:
    """Every complete call ``name(...)`` written in ``text`` (one line or several); for each
    occurrence the shortest source that parses as an expression, so parentheses inside string
    arguments (``correct_bracketing("(()")``) do not cut a call short."""
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\(", text):
        for close in re.finditer(r"\)", text[m.end() - 1 : m.end() - 1 + MAX_CALL_CHARS]):
            try:
                node = ast.parse(text[m.start() : m.end() + close.end() - 1], mode="eval").body
            except SyntaxError:
                continue
            if isinstance(node, ast.Call):
                yield node
            break


def example_inputs(problem: dict) -> list[tuple]:
    """Literal arguments of every distinct call of the entry point in its docstring, in order:
    ``>>> f(1)`` lines as well as prose examples (``f(1) == 2``, ``f(1) ➞ 2``, ``f(1) should
    return 2``). Calls with any non-literal argument (``f(n)``) cannot be replayed: skipped."""
    entry = problem["entry_point"]
    prompt = problem["prompt"]
    at = prompt.find(f"def {entry}(")
    docstring = prompt[at + len(f"def {entry}(") :] if at >= 0 else prompt  # the signature is no example
    inputs: list[tuple] = []
    for node in _calls_of(entry, docstring):
        try:
            args = tuple(literal(a) for a in node.args)
        except (Untranslatable, ArithmeticError, TypeError):
            continue
        if not node.keywords and args not in inputs:
            inputs.append(args)
    return inputs


def probe_program(problem: dict, completion: str, inputs: list[tuple]) -> str:
    """The sample's function, then one printed ``repr`` (or exception type) per example input."""
    return (f"{problem['prompt']}{completion}\n\nfor _args in {inputs!r}:\n    try:\n"
            f"        print(repr({problem['entry_point']}(*_args)))\n    except BaseException as _e:\n"
            "        print('raised', type(_e).__name__)\n")  # fmt: skip


def vote(problems: dict[str, dict], results: list[dict], sandbox: Sandbox, workers: int,
         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The selected sample per problem and the pass@1 of the selection.

    ``results`` are the scored samples (``task_id``, ``completion``, ``passed``) in input order.
    """
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_task[r["task_id"]].append(r)
    inputs = {t: example_inputs(problems[t]) for t in by_task}
    jobs = [(t, i, r["completion"]) for t, rs in by_task.items() if inputs[t] for i, r in enumerate(rs)]

    def behaviour(job: tuple[str, int, str]) -> str:
        task, _, completion = job
        outcome = sandbox.run(probe_program(problems[task], completion, inputs[task]))
        return outcome.output if outcome.passed else outcome.result

    keys: dict[tuple[str, int], str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for n, (job, key) in enumerate(zip(jobs, pool.map(behaviour, jobs), strict=True), 1):
            keys[(job[0], job[1])] = key
            if progress is not None:
                progress(n, len(jobs))
    selected = {}
    for task, rs in by_task.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(len(rs)):
            groups[keys.get((task, i), "")].append(i)
        best = max(groups.values(), key=lambda members: (len(members), -members[0]))
        selected[task] = best[0]
    passed = sum(by_task[t][i]["passed"] for t, i in selected.items())
    any_passed = sum(any(r["passed"] for r in rs) for rs in by_task.values())
    n = len(selected) or 1
    return {"pass@1(vote)": passed / n, "pass@n": any_passed / n, "selected": selected,
            "problems_without_examples": sum(not inputs[t] for t in by_task)}  # fmt: skip
