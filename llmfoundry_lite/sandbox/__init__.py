"""The one place model-written code runs: bubblewrap sandboxes started by a zygote, one per program.

Import from here, never from the modules inside: ``Sandbox`` runs programs (``run``, ``run_job``),
``SandboxConfig`` is its ``sandbox:`` config section, ``ExecResult`` what a run returns,
``SandboxUnavailable`` the error when no sandbox can be set up, and ``Job``/``Step``/``rlimit_spec``
describe a multi-step program (compile, then run) for the languages that need one. How it works is in
``core.py`` (the parent's side), ``zygote.py`` and ``child.py`` (the supervisor forked per program),
``kernel.py`` (namespaces, capabilities, rlimits), ``job.py``, ``io.py`` and ``pool.py``; why bwrap
could not start (a sysctl, AppArmor, a container's seccomp profile) and the fix is ``diagnose.py``.
"""

from llmfoundry_lite.sandbox.config import SANDBOX_KINDS, SandboxConfig
from llmfoundry_lite.sandbox.core import ExecResult, Sandbox, SandboxUnavailable
from llmfoundry_lite.sandbox.job import Job, Step, rlimit_spec

__all__ = ["SANDBOX_KINDS", "ExecResult", "Job", "Sandbox", "SandboxConfig", "SandboxUnavailable", "Step", "rlimit_spec"]
