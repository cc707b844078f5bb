"""Sandboxes booted ahead of need, and how a sandbox is stopped.

Starting bubblewrap and an interpreter costs ~15-25 ms, mostly kernel latency (namespace
and mount setup) rather than CPU. ``SparePool`` therefore boots sandboxes from a background
thread into a bounded queue while programs run; each program takes one that has never run
anything, and every sandbox serves exactly one program.

A sandbox is stopped by SIGKILLing its process group: that is bwrap's monitor (our child),
whose death kills the namespace's PID-1 (``--die-with-parent``), whose death makes the kernel
kill everything else in the PID namespace. bwrap's monitor never reaps that PID-1 (it exits
as soon as the program's status is known, even on a normal exit), so the machine's init
must: run the evaluator under an init that reaps orphans (any normal system; ``docker run
--init`` in containers).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from llmfoundry_lite.eval.sandbox_io import read_available


@dataclass
class Started:
    """A started sandboxed interpreter that waits on stdin for its program."""

    proc: subprocess.Popen
    verdict_r: int


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL the sandbox's process group and reap bwrap's monitor."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is already gone: nothing left to kill
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            stream.close()


def finish(started: Started) -> bytes:
    """Stop a sandbox and close its verdict pipe; returns the verdict bytes not read yet."""
    stop(started.proc)
    try:
        return read_available(started.verdict_r)
    finally:
        os.close(started.verdict_r)


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
            if item.proc.poll() is None:
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
