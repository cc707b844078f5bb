"""How the sandbox's zygote starts: its code compiled once, sent marshaled ahead of its config.

The zygote (``sandbox_child.py``) starts once per ``Sandbox`` as ``python -I -S -c BOOT``, which
reads exactly that many bytes from stdin with ``os.read`` (no buffered read-ahead into the config
that follows) and executes them as ``__main__``. The code is compiled by the sandbox's own
interpreter, so the bytecode always matches the interpreter that runs it.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

CHILD_SOURCE = (Path(__file__).parent / "sandbox_child.py").read_text()
_COMPILE = ("import marshal, sys\n"
            "sys.stdout.buffer.write(marshal.dumps(compile(sys.stdin.read(), '<sandbox supervisor>', 'exec')))")
BOOT = ("import marshal, os, sys\n"
        "n, b = int(sys.argv.pop(1)), b''\n"
        "while len(b) < n:\n"
        "    c = os.read(0, n - len(b))\n"
        "    if not c:\n"
        "        raise SystemExit('sandbox supervisor: stdin closed before its code arrived')\n"
        "    b += c\n"
        "del n, c\n"
        "exec(marshal.loads(b))\n")
"""``argv[1]`` is the code's length in bytes; the supervisor then sees its own argv from index 1."""


@functools.cache
def supervisor_code(python: str, env: tuple[tuple[str, str], ...]) -> bytes:
    """``sandbox_child.py`` compiled and marshaled by ``python`` (run as ``-I -S``, like the sandbox)."""
    proc = subprocess.run([python, "-I", "-S", "-c", _COMPILE], input=CHILD_SOURCE.encode(), capture_output=True,
                          env=dict(env), timeout=60, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{python} could not compile the sandbox supervisor: {proc.stderr.decode()[-500:]}")
    return proc.stdout
