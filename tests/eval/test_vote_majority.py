"""``--select vote`` picks a working majority: samples that never return on an example input cannot
win, and a group returning the docstring's stated outputs beats a larger group that does not."""

from __future__ import annotations

from llmfoundry_lite.eval import selection
from llmfoundry_lite.eval.execution import execute_samples

RAISES_NAME_ERROR = "    return undefined_helper(xs)\n"


def scored(problems: dict[str, dict], task: str, completions: list[str], sandbox) -> tuple[dict, list[dict]]:
    """The one-problem subset and its scored samples, as ``vote`` receives them."""
    subset = {task: problems[task]}
    samples = [{"task_id": task, "completion": c} for c in completions]
    return subset, execute_samples(subset, samples, sandbox, workers=2)


def test_docstring_outputs_are_read_from_doctest_lines_and_prose(problems):
    assert selection.expected_outputs(problems["HumanEval/2"]) == {0: 0.5}  # the line after ">>> f(3.5)"
    assert selection.expected_outputs(problems["HumanEval/12"]) == {0: None, 1: "a", 2: "ccc"}  # no line: None
    assert selection.expected_outputs(problems["HumanEval/72"]) == {0: False, 1: False, 2: True, 3: True}  # ➞
    assert selection.expected_outputs(problems["HumanEval/67"]) == {0: 8, 1: 2, 2: 95, 3: 19}  # "-> 19 - 5 - 6 = 8"
    assert selection.expected_outputs(problems["HumanEval/141"]) == {0: "Yes", 1: "No"}  # "# => 'No' (the name …)"
    # ">>> round(find_zero([1, 2]), 2)": inputs, but the output stated is round's, not find_zero's
    assert len(selection.example_inputs(problems["HumanEval/32"])) == 2
    assert selection.expected_outputs(problems["HumanEval/32"]) == {}
    # "f(n) = …" states no value; "next_smallest() that returns" is an input without an output
    assert selection.expected_outputs(problems["HumanEval/90"]) == {1: 2, 2: 2, 3: None, 4: None}
    stated = [selection.expected_outputs(p) for p in problems.values()]
    assert (sum(map(bool, stated)), sum(map(len, stated))) == (139, 400)


def test_samples_that_raise_on_every_example_cannot_win(sandbox, problems):
    # HumanEval/32 states no output for its example inputs, so only the working rule separates the groups
    task = "HumanEval/32"
    completions = [RAISES_NAME_ERROR] * 6 + [problems[task]["canonical_solution"]] * 4
    subset, results = scored(problems, task, completions, sandbox)
    assert [r["passed"] for r in results] == [False] * 6 + [True] * 4
    picked = selection.vote(subset, results, sandbox, workers=2)
    assert picked["selected"] == {task: 6}  # the first correct sample, not the six that raise NameError
    assert (picked["pass@1(vote)"], picked["pass@n"]) == (1.0, 1.0)
    assert picked["problems_without_a_working_sample"] == 0


def test_a_sample_that_returns_before_it_times_out_works(sandbox, problems):
    # HumanEval/32 states no outputs; this sample returns on [1, 2], then loops on [-6, 11, -6, 1] until the
    # sandbox's timeout: the result it printed first still counts, so its group of one beats two that raise
    task = "HumanEval/32"
    loops_on_the_second = "    while len(xs) > 2:\n        pass\n    return -xs[0] / xs[1]\n"
    subset, results = scored(problems, task, [RAISES_NAME_ERROR, RAISES_NAME_ERROR, loops_on_the_second], sandbox)
    picked = selection.vote(subset, results, sandbox, workers=2)
    assert picked["selected"] == {task: 2}
    assert picked["problems_without_a_working_sample"] == 0


def test_a_group_matching_the_stated_outputs_beats_a_larger_one(sandbox, problems):
    # will_it_fly's docstring states four outputs; ignoring the palindrome rule gets three of them
    task = "HumanEval/72"
    heavy_only = "    return sum(q) <= w\n"
    balanced = "    return q == q[::-1] and sum(q) <= w\n"
    completions = [heavy_only] * 3 + [balanced, problems[task]["canonical_solution"]]
    subset, results = scored(problems, task, completions, sandbox)
    assert [r["passed"] for r in results] == [False] * 3 + [True] * 2
    picked = selection.vote(subset, results, sandbox, workers=2)
    assert picked["selected"] == {task: 3}  # the two correct samples agree on all four stated outputs
    assert (picked["pass@1(vote)"], picked["problems_with_stated_outputs"]) == (1.0, 1)


def test_when_no_sample_works_the_largest_group_wins_and_ties_go_to_the_earliest(sandbox, problems):
    task = "HumanEval/2"
    loops, divides_by_zero = "    while True:\n        pass\n", "    return number / 0\n"
    completions = [loops, divides_by_zero, RAISES_NAME_ERROR, RAISES_NAME_ERROR, divides_by_zero]
    subset, results = scored(problems, task, completions, sandbox)
    picked = selection.vote(subset, results, sandbox, workers=2)
    assert picked["selected"] == {task: 1}  # two groups of two: the one whose first sample came first
    assert (picked["pass@1(vote)"], picked["problems_without_a_working_sample"]) == (0.0, 1)
