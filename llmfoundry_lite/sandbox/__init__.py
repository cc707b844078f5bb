"""The one place model-written code runs: bubblewrap sandboxes started by a zygote, one per program.

Import from here, never from the modules inside: ``Sandbox`` runs programs (``run``, ``run_job``),
``SandboxConfig`` is its ``sandbox:`` config section, ``ExecResult`` what a run returns,
``SandboxUnavailable`` the error when no sandbox can be set up, ``ERROR_PREFIX`` how a result
that is an infrastructure failure (no verdict on the program) starts, and ``Job``/``Step``/``rlimit_spec``
describe a multi-step program (compile, then run) for the languages that need one; ``check_job``
scores a Python candidate against tests run outside its process (``checker.py``). How it works is in
``core.py`` (the parent's side), ``zygote.py`` and ``child.py`` (the supervisor forked per program),
``kernel.py`` (namespaces, capabilities, rlimits), ``job.py``, ``io.py`` and ``pool.py``; why bwrap
could not start (a sysctl, AppArmor, a container's seccomp profile) and the fix is ``diagnose.py``.
"""

from llmfoundry_lite.sandbox.config import SANDBOX_KINDS, SandboxConfig
from llmfoundry_lite.sandbox.core import ERROR_PREFIX, ExecResult, Sandbox, SandboxUnavailable
from llmfoundry_lite.sandbox.job import Job, Step, check_job, rlimit_spec

__all__ = ["ERROR_PREFIX", "SANDBOX_KINDS", "ExecResult", "Job", "Sandbox", "SandboxConfig", "SandboxUnavailable", "Step", "check_job", "rlimit_spec"]
