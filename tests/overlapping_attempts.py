"""Two attempts of one unit of work at once, in two processes, as speculation and zombie attempts run them.

Attempt A pauses inside its write (after the first call of ``pause_at`` that leaves ``pause_at``'s object
with a true ``attr``: a writer open, rows buffered) until attempt B has run the same work from start to end;
then A goes on. ``run_overlapping`` returns both processes' results and what B left in place before A went
on, so a test can check that A neither broke B's files nor failed itself.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_ATTEMPT = r"""
import importlib, pickle, sys, time
from pathlib import Path

fn_module, fn_name, args_file, pause_at, attr, go = sys.argv[1:7]
if pause_at != "-":
    module, cls_name, method = pause_at.rsplit(".", 2)
    cls = getattr(importlib.import_module(module), cls_name)
    original = getattr(cls, method)
    state = {"paused": False}

    def paused(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if not state["paused"] and getattr(self, attr, None):
            state["paused"] = True
            Path(go + ".waiting").touch()
            while not Path(go).exists():
                time.sleep(0.02)
        return result

    setattr(cls, method, paused)
fn = getattr(importlib.import_module(fn_module), fn_name)
fn(*pickle.loads(Path(args_file).read_bytes()))
"""


def run_overlapping(fn: Callable, args: tuple, pause_at: str, attr: str, scratch: Path,
                    between: Callable[[], object] = lambda: None, timeout: float = 300):
    """Run ``fn(*args)`` as attempt A (paused at ``pause_at``) and, while A waits, as attempt B; then let A
    finish. Returns ``(a, b, seen)``: the two ``CompletedProcess`` and ``between()``'s value after B."""
    scratch.mkdir(parents=True, exist_ok=True)
    args_file, go = scratch / "args.pkl", scratch / "go"
    args_file.write_bytes(pickle.dumps(args))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def start(pause: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _ATTEMPT, fn.__module__, fn.__name__, str(args_file), pause,
                                 attr, str(go)], cwd=scratch, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    a = start(pause_at)
    deadline = time.monotonic() + timeout
    while not Path(str(go) + ".waiting").exists():
        if a.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"attempt A never reached {pause_at}: {a.communicate()[0][-3000:]}")
        time.sleep(0.02)
    b = start("-")
    b_out, _ = b.communicate(timeout=timeout)
    seen = between()
    go.touch()
    a_out, _ = a.communicate(timeout=timeout)
    return (subprocess.CompletedProcess(a.args, a.returncode, a_out),
            subprocess.CompletedProcess(b.args, b.returncode, b_out), seen)
