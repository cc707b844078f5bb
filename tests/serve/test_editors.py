"""The simulated editor population: its acceptance rule, and its traffic landing in the feedback store."""

from __future__ import annotations

import json

import pytest

from llmfoundry_lite.serve.editors import Population, degenerate, load_prompts, simulate, verdict
from llmfoundry_lite.serve.feedback import FeedbackRecorder
from llmfoundry_lite.serve.feedback_store import FeedbackStore
from tests.serve.conftest import serving

PY = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n'
JS = "//Add two numbers.\nfunction add(a, b){\n"


@pytest.mark.parametrize(("language", "prompt", "completion", "expected"), [
    ("python", PY, "    return a + b\n", "accepted"),
    ("python", PY, "    return (a +\n", "parse_error"),
    ("python", PY, "\n   \n", "empty"),
    ("python", PY, "    # TODO\n", "empty"),
    ("python", PY, "    x = 1\n    x = 1\n    y = 2\n", "repetition"),
    ("python", PY, "    return [1, 1, 1, 1, 1, 1, 1, 1, 1]\n", "repetition"),
    ("js", JS, "  return a + b;\n", "accepted"),
    ("js", JS, "  return a + ;\n", "parse_error"),
    ("cpp", "#include <vector>\nint add(int a, int b) {\n", "  return a + b;\n", "accepted"),
])  # fmt: skip
def test_a_choice_is_accepted_when_it_parses_and_does_not_loop(language, prompt, completion, expected):
    assert verdict(language, prompt, completion) == expected


def test_degenerate_needs_a_real_loop():
    assert not degenerate("    total = 0\n    for x in xs:\n        total += x\n    return total\n")
    assert degenerate("a = 1\na = 1\na = 1\nb = 2\n")


def test_the_population_s_events_are_what_the_store_holds(tiny, tmp_path):
    problems = tmp_path / "python.jsonl"
    problems.write_text("".join(json.dumps({"task_id": f"t/{i}", "language": "python", "prompt": p,
                                            "tests": "", "stop_tokens": ["\ndef"]}) + "\n"
                                for i, p in enumerate([PY, "def mul(a, b):\n", "import os\n\ndef ls(path):\n"])))  # fmt: skip
    store = FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite'}")
    population = Population(users=4, requests_per_user=3, n=2, max_tokens=12, concurrency=2)
    with serving(*tiny, feedback=FeedbackRecorder(store)) as (url, _, _):
        tally = simulate(url, load_prompts([problems]), population)
    completions, events = store.tables()
    store.close()
    assert tally.failed_requests == 0 and completions.num_rows == 12
    assert sum(tally.shown.values()) == 24 and events.num_rows == 48  # shown + a verdict per choice
    kinds = [e["event"] for e in events.to_pylist()]
    assert kinds.count("shown") == 24 and kinds.count("accepted") == sum(tally.accepted.values())
    assert kinds.count("rejected") == 24 - sum(tally.accepted.values())
    assert set(completions.column("language").to_pylist()) == {"python"}
    assert len(set(completions.column("user_hash").to_pylist())) == 4
