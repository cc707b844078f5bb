"""The evaluator's side of the zygote (``child.py``): start it once, ask it for supervisors.

A fresh interpreter per sample would cost ~13 ms of CPU before the program's first line, more
than everything else a sandboxed sample costs together. The zygote is that interpreter, started
once per ``Sandbox``; each sample's supervisor is a fork of it, which then starts and joins a
fresh sandbox of its own. Requests go over a Unix socket pair as one byte plus three fds (the
job's stdin, the output pipe, the verdict pipe: the supervisor gets only their far ends); the
answer carries the supervisor's pidfd. The zygote exits when our end of the socket closes.
"""

from __future__ import annotations

import marshal
import os
import socket
import subprocess
import threading

from llmfoundry_lite.sandbox.boot import BOOT
from llmfoundry_lite.sandbox.io import Started
from llmfoundry_lite.sandbox.memory import move


class ZygoteDied(RuntimeError):
    """The zygote stopped answering twice in a row (its own errors went to the evaluator's stderr)."""


class Zygote:
    """One zygote process; ``fork()`` is safe to call from several threads at once."""

    def __init__(self, launcher: list[str], python: str, code: bytes, config: dict, env: dict[str, str],
                 popen_user: dict[str, object], cgroup: str | None = None) -> None:  # fmt: skip
        """``cgroup``: the zygote's leaf of its ``Sandbox``'s cgroup v2 group (it moves there
        before it runs a line: every sample's cgroup is made next to it), or None."""
        self._cgroup = cgroup
        self._argv = [*launcher, python, "-I", "-S", "-c", BOOT, str(len(code))]
        self._boot = code + marshal.dumps(config, 4)
        self._env, self._popen_user = env, popen_user
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [*self._argv, str(theirs.fileno())], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), start_new_session=True, env=self._env, cwd="/", **self._popen_user,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        assert self._proc.stdin is not None
        if self._cgroup is not None:  # it waits for its code on stdin: nothing forked yet
            try:
                move(self._proc.pid, self._cgroup)
            except BaseException:
                self._proc.kill()
                self._stop()
                raise
        with self._proc.stdin:
            self._proc.stdin.write(self._boot)  # its code, then its config, then EOF

    def fork(self) -> Started:
        """A new supervisor, already setting up its own fresh sandbox, waiting for its job."""
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        verdict_r, verdict_w = os.pipe()
        try:
            with self._lock:
                pidfd = self._request([job_r, out_w, verdict_w])
        except BaseException:
            for fd in (job_w, out_r, verdict_r):
                os.close(fd)
            raise
        finally:
            for fd in (job_r, out_w, verdict_w):
                os.close(fd)
        return Started(pidfd, job_w, out_r, verdict_r)

    def _request(self, fds: list[int]) -> int:
        for _attempt in (1, 2):  # a zygote killed from outside is restarted once
            if self._sock is None:
                self._start()
            assert self._sock is not None and self._proc is not None
            try:
                socket.send_fds(self._sock, [b"j"], fds)
                _, got, _, _ = socket.recv_fds(self._sock, 1, 1)
            except OSError:
                got = []
            if len(got) == 1:
                return got[0]
            for fd in got:
                os.close(fd)
            self._stop()
        raise ZygoteDied("the sandbox zygote died twice in a row while starting a supervisor")

    def close(self) -> None:
        """Stop the zygote (every supervisor and sandbox it started dies with it); ``fork()``
        starts a new one."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        sock, proc, self._sock, self._proc = self._sock, self._proc, None, None
        if sock is not None:
            sock.close()  # EOF: the zygote exits by itself
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
