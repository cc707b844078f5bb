"""``--select vote``: pick one of n samples per problem by agreement on the prompt's own examples.

Each sample is run (sandboxed, like any sample) on the inputs of its prompt's docstring
examples (``>>> entry(literal, ...)`` lines); samples whose outputs are identical form a group,
and the first sample of the largest group is selected (ties: the group whose first sample came
first). No test is consulted, so this is a selection a deployed system could make itself; its
pass@1 is reported next to plain pass@1 and pass@n. A problem whose docstring has no such
example selects its first sample; those problems are counted.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmfoundry_lite.eval.languages.pymodel import Untranslatable, literal
from llmfoundry_lite.eval.sandbox import Sandbox


def example_inputs(problem: dict) -> list[tuple]:
    """Literal arguments of every ``>>> entry_point(...)`` line in the prompt."""
    inputs = []
    for line in problem["prompt"].splitlines():
        text = line.strip()
        if not text.startswith(">>> "):
            continue
        try:
            node = ast.parse(text[4:], mode="eval").body
        except SyntaxError:
            continue  # prose after '>>>', not a call
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == problem["entry_point"]:
            try:
                inputs.append(tuple(literal(a) for a in node.args))
            except (Untranslatable, ArithmeticError, TypeError):
                continue  # a call with a non-literal argument: not replayable
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
