"""Sandboxes booted ahead of need, and how a sandbox is stopped.

Setting a sandbox up costs ~10 ms, mostly kernel work (namespaces and mounts). ``SparePool``
therefore asks for sandboxes from a background thread, into a bounded queue, while programs
run; each program takes one that has never run anything, and every sandbox serves exactly one
program.

A sandbox is stopped by SIGKILLing its supervisor through a pidfd (no PID-reuse race). The
supervisor's death kills bwrap's monitor (parent-death signal), whose death kills the
sandbox's PID 1 (``--die-with-parent``), whose death makes the kernel kill everything else in
the PID namespace; the zygote, a child subreaper, reaps them all.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections.abc import Callable

from llmfoundry_lite.sandbox.io import Started, read_available


def finish(started: Started) -> bytes:
    """Stop a sandbox and close our ends of its pipes; returns the verdict bytes not read yet."""
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing left to kill
        signal.pidfd_send_signal(started.pidfd, signal.SIGKILL)
    try:
        return read_available(started.verdict_r)
    finally:
        started.close_stdin()
        for fd in (started.pidfd, started.stdout, started.verdict_r):
            os.close(fd)


class SparePool:
    """``depth`` sandboxes booted ahead by a daemon thread; ``depth`` 0 starts each on demand."""

    def __init__(self, start: Callable[[], Started], depth: int) -> None:
        self._start = start
        self._depth = depth
        self._ready: queue.Queue[Started | BaseException] = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                item: Started | BaseException = self._start()
            except BaseException as err:  # handed to the consumer, which raises it
                item = err
            while True:
                if self._stop.is_set():
                    if isinstance(item, Started):
                        finish(item)
                    return
                try:
                    self._ready.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def take(self) -> Started:
        """A started sandbox that has never run anything."""
        if self._depth == 0:
            return self._start()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._produce, name="sandbox-prestart", daemon=True)
                self._thread.start()
        while True:
            item = self._ready.get()
            if isinstance(item, BaseException):
                raise item
            if item.alive():
                return item
            finish(item)  # died while idle (killed from outside): never use it

    def close(self) -> None:
        """Stop the producer and kill every idle sandbox."""
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Started):
                finish(item)
