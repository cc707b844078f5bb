"""What every command shares: errors a user can fix end in one line on stderr and exit status 2.

A traceback is for a bug; a missing input, a typo in a config key or a missing ``bwrap`` is not one,
so each command runs inside ``user_errors()``. The errors it turns into one line are those whose
message already names the fix: ``ConfigError`` (``config error: <msg>``, the line the README shows),
the data layer's ``InputError``/``OutputDirError``, ``SandboxUnavailable`` and ``FileNotFoundError``/
``NotADirectoryError`` (they name the path); everything else keeps its traceback. ``ValueError`` is
added (``user_errors(ValueError)``) only where the code reports user errors with it: training and
serving setup (a shards manifest that does not match, a checkpoint without RunInfo, ``--device cuda``
without a GPU), loading ``--model``, a conversion's checks, and the filter and synthesis runs, whose
input and output checks raise it, as they did before this module existed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from llmfoundry_lite.config import ConfigError


def fail(message: str) -> NoReturn:
    """Print ``message`` as the command's last word on stderr and exit with status 2 (a usage error)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def _user_error_types(also: tuple[type[Exception], ...]) -> tuple[type[Exception], ...]:
    """The errors a user can fix, imported only when an exception is being matched: the data layer
    costs a second to import, and an error from it means it is already loaded."""
    from llmfoundry_lite.corpus.readers import InputError
    from llmfoundry_lite.filtering.pipeline import OutputDirError
    from llmfoundry_lite.sandbox import SandboxUnavailable

    return (InputError, OutputDirError, SandboxUnavailable, FileNotFoundError, NotADirectoryError, *also)


@contextmanager
def user_errors(*also: type[Exception]) -> Iterator[None]:
    """Run the block; a user error (see the module docstring, plus ``also``) becomes one line and exit 2.

    ``with user_errors(): cfg = parse_args(argv)`` prints ``config error: <msg>`` for a bad key;
    ``with user_errors(ValueError): trainer = build_trainer(cfg)`` also reports setup ValueErrors.
    """
    try:
        yield
    except ConfigError as err:  # a ValueError too: matched first so it keeps its own prefix
        fail(f"config error: {err}")
    except _user_error_types(also) as err:  # evaluated only while an exception is matched
        fail(f"error: {err}")
