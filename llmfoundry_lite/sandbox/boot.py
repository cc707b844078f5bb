"""How the sandbox's zygote starts: its code compiled once, sent marshaled ahead of its config.

The zygote (``child.py``, with its kernel calls in ``kernel.py``) starts once per
``Sandbox`` as ``python -I -S -c BOOT <n>``, which reads exactly ``n`` bytes from stdin with
``os.read`` (no buffered read-ahead into the config that follows): a marshaled list of
``(module name, code)``. Each module but the last is executed as a top-level module of that name
(so the zygote can ``import sandbox_kernel``), the last as ``__main__``. The code is compiled by
the sandbox's own interpreter, so the bytecode always matches the interpreter that runs it.
"""

from __future__ import annotations

import functools
import marshal
import subprocess
from pathlib import Path

MODULES = (("sandbox_kernel", "kernel.py"), ("sandbox_memory", "memory.py"), ("sandbox_checker", "checker.py"), ("sandbox_child", "child.py"))
"""The zygote's modules (its name for each, and the file here) in the order they run; the last is its ``__main__``."""
SOURCES = tuple((name, (Path(__file__).parent / file).read_text()) for name, file in MODULES)
_COMPILE = ("import marshal, sys\n"
            "sources = marshal.loads(sys.stdin.buffer.read())\n"
            "sys.stdout.buffer.write(marshal.dumps([(n, compile(s, f'<sandbox {n}>', 'exec')) for n, s in sources]))")
BOOT = ("import marshal, os, sys\n"
        "n, b = int(sys.argv.pop(1)), b''\n"
        "while len(b) < n:\n"
        "    c = os.read(0, n - len(b))\n"
        "    if not c:\n"
        "        raise SystemExit('sandbox supervisor: stdin closed before its code arrived')\n"
        "    b += c\n"
        "*m, (_, main) = marshal.loads(b)\n"
        "for name, code in m:\n"
        "    sys.modules[name] = type(sys)(name)\n"
        "    exec(code, vars(sys.modules[name]))\n"
        "del n, c, b, m, name, code\n"
        "exec(main)\n")
"""``argv[1]`` is the code's length in bytes; the zygote then sees its own argv from index 1."""


@functools.cache
def supervisor_code(python: str, env: tuple[tuple[str, str], ...]) -> bytes:
    """The zygote's modules compiled and marshaled by ``python`` (run as ``-I -S``, like the sandbox)."""
    proc = subprocess.run([python, "-I", "-S", "-c", _COMPILE], input=marshal.dumps(SOURCES, 4), capture_output=True,
                          env=dict(env), timeout=60, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{python} could not compile the sandbox supervisor: {proc.stderr.decode()[-500:]}")
    return proc.stdout
