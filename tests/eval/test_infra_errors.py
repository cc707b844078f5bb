"""Infrastructure failures are an ``error`` outcome, never a wrong answer (issue 30, item 2).

A real bwrap that starts failing mid-run (a wrapper first on PATH that fails once a flag file
exists), a tool that cannot start, the start-up reference run, and the callback's all-reduce
with one rank broken (two real processes over gloo).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from llmfoundry_lite.eval.execution import execute_samples, require_working
from llmfoundry_lite.eval.infra import ErrorBudget, InfrastructureFailure, error_causes
from llmfoundry_lite.eval.passk import pass_at_k
from llmfoundry_lite.sandbox import Job, Sandbox, Step, rlimit_spec
from tests.conftest import FAST

REPO = Path(__file__).parents[2]
BWRAP_ERROR = "bwrap: setting up uid map: Permission denied"


@pytest.fixture
def breakable_sandbox(monkeypatch):
    """A sandbox whose bwrap works until ``flag`` exists, then fails as a host change would make it
    (the wrapper sits in a world-readable directory: a root evaluator runs bwrap as nobody)."""
    real = shutil.which("bwrap")
    home = Path(tempfile.mkdtemp(prefix="llmfl-bwrap-"))
    home.chmod(0o755)
    flag = home / "broken"
    wrapper = home / "bwrap"
    wrapper.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then echo '{BWRAP_ERROR}' >&2; exit 1; fi\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{home}:{os.environ['PATH']}")
    try:
        with Sandbox(dataclasses.replace(FAST, prestart=0)) as sb:
            yield sb, flag
    finally:
        shutil.rmtree(home)


def canonical(problems: dict, n: int) -> list[dict]:
    return [{"task_id": t, "completion": p["canonical_solution"]} for t, p in list(problems.items())[:n]]


def test_a_sandbox_failing_mid_run_gives_errors_not_wrong_answers(breakable_sandbox, problems):
    sb, flag = breakable_sandbox
    samples = canonical(problems, 8)
    results = execute_samples(problems, samples, sb, 1, progress=lambda done, _: done == 3 and flag.touch())
    assert [r["passed"] for r in results[:3]] == [True] * 3
    assert all(r["result"].startswith("error: sandbox setup: ") and BWRAP_ERROR in r["result"] for r in results[3:])
    assert error_causes(results) == {"sandbox setup": 5}
    assert pass_at_k(results, [1]) == {"pass@1": 1.0}  # over the 3 judged samples: every correct program passed


def test_past_the_error_budget_the_run_stops_with_the_cause(breakable_sandbox, problems):
    sb, flag = breakable_sandbox
    flag.touch()
    samples = canonical(problems, 6)
    with pytest.raises(InfrastructureFailure, match=r"stopped: 1 of 6 samples could not be judged .*sandbox setup ×1"):
        execute_samples(problems, samples, sb, 1, max_error_rate=0.01)
    budget = ErrorBudget(200, 0.01)  # 1% of 200: two errors are tolerated, the third stops
    for _ in range(2):
        budget.add({"task_id": "t", "result": "error: sandbox setup: x"})
    with pytest.raises(InfrastructureFailure):
        budget.add({"task_id": "t", "result": "error: sandbox setup: x"})


def test_a_tool_that_cannot_start_is_an_error_not_a_compile_error(sandbox):
    step = Step(("/usr/bin/llmfl-no-such-compiler", "x.c"), "compile", 5.0, rlimit_spec(sandbox.cfg, 5.0))
    r = sandbox.run_job(Job({"x.c": b"int main(){}"}, (step, Step(("./x",), "run", 1.0, rlimit_spec(sandbox.cfg, 1.0)))))
    assert r.error and r.result.startswith("error: cannot start /usr/bin/llmfl-no-such-compiler: ")
    exits = sandbox.run_job(Job({}, (Step(("/bin/sh", "-c", "exit 127"), "run", 1.0, rlimit_spec(sandbox.cfg, 1.0)),)))
    assert exits.result == "failed: exit status 127" and not exits.error  # a program's own 127 is its verdict


def test_the_reference_run_catches_a_broken_sandbox_before_scoring(breakable_sandbox):
    sb, flag = breakable_sandbox
    require_working("python", sb)
    flag.touch()
    with pytest.raises(InfrastructureFailure, match="python: the known-good solution of HumanEval/53 did not pass"):
        require_working("python", sb)


def test_the_command_exits_3_when_the_toolchain_is_broken(tmp_path):
    """A ``node`` that cannot run in the sandbox (a host-only script first on PATH): the start-up
    reference run stops the command before it scores a single sample, exit 3, no traceback."""
    fake = tmp_path / "bin" / "node"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/53", "completion": "  return x + y;\n"}) + "\n")
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "eval/humaneval.py", "--language", "js", "--samples", str(samples),
                           "--problems", str(one_problem(tmp_path)), "--workers", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "js: the known-good solution of HumanEval/53 did not pass" in done.stderr and "cannot start" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "s.jsonl_summary.json").exists()


def one_problem(tmp_path: Path) -> Path:
    from llmfoundry_lite.eval.problems import load_problems

    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps(load_problems()["HumanEval/53"]) + "\n")
    return path


RANK_SCRIPT = """
import sys, torch.distributed as tdist
from composer.devices import DeviceCPU
from types import SimpleNamespace
from llmfoundry_lite.eval.callback import HumanEvalCallback
from llmfoundry_lite.eval.infra import InfrastructureFailure
rank, init = int(sys.argv[1]), sys.argv[2]
tdist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
sandbox = {"timeout": 2.0} if rank == 0 else {"timeout": 2.0, "python": "/nonexistent/python3"}
cb = HumanEvalCallback(tokenizer=sys.argv[3], n_problems=1, max_new_tokens=4, workers=1, sandbox=sandbox)
try:
    cb.fit_start(SimpleNamespace(device=DeviceCPU()), None)
    print("RESULT ok")
except InfrastructureFailure as err:
    print("RESULT raised", str(err).replace("\\n", " "))
"""


def test_callback_all_reduces_the_reference_run_so_every_rank_stops(tmp_path):
    from tests.eval.conftest import TOKENIZER_DIR

    init = f"file://{tmp_path / 'store'}"
    def env(rank: int) -> dict[str, str]:  # what the composer launcher sets for each rank of one node
        return {**os.environ, "PYTHONPATH": str(REPO), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                "LOCAL_WORLD_SIZE": "2", "NODE_RANK": "0"}  # fmt: skip

    procs = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(rank), init, str(TOKENIZER_DIR)], env=env(rank),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]  # fmt: skip
    outs = [p.communicate(timeout=180)[0] for p in procs]
    results = [next((line for line in out.splitlines() if line.startswith("RESULT")), out[-3000:]) for out in outs]
    assert results[0].startswith("RESULT raised") and "another rank" in results[0], outs
    assert results[1].startswith("RESULT raised rank 1:") and "nonexistent" in results[1], outs[1]
