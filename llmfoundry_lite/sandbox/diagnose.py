"""Why bwrap could not start a sandbox on this machine, and what to do about it.

bwrap's own error line says which step failed, not why: the same ``No permissions to create a new
namespace`` comes from a Debian kernel with ``kernel.unprivileged_userns_clone=0`` and from Docker's
default seccomp profile. So the cause is read from that line *and* from the host's state: the
user-namespace sysctls under ``/proc/sys``, whether a seccomp filter is on (``/proc/self/status``)
and whether this is a container (``/.dockerenv``, ``/run/.containerenv``, ``/proc/1/cgroup``). The
known failures, first match wins:

- ``... the kernel does not support user namespaces``: a kernel without CONFIG_USER_NS;
- namespace refused (``No permissions to create a new namespace``, ``Creating new namespace failed``)
  with ``user.max_user_namespaces = 0``: user namespaces are switched off;
- the same with ``kernel.unprivileged_userns_clone = 0``: the Debian-style sysctl;
- the same in a container with a seccomp filter on: Docker's default seccomp profile (the host's
  AppArmor sysctl shows through in a container, so this is tested before it);
- ``kernel.apparmor_restrict_unprivileged_userns = 1`` (Ubuntu >= 23.10, 24.04): the namespace is
  created but powerless (``setting up uid map: Permission denied``, ``loopback: Failed RTM_NEWADDR``).

Standard library only. ``HOST_ROOT`` is where ``/proc`` and the container markers are read; tests
point it at a fake tree to play each host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HOST_ROOT = Path("/")
"""The root the host's state is read under (``proc/sys/...``, ``.dockerenv``); tests replace it."""

REFUSED = re.compile(
    r"No permissions to creat\w* (?:a )?new namespace"  # the wording changed across bwrap versions
    r"|Creating new namespace failed"
    r"|unshare user ns: Operation not permitted"
)
"""bwrap could not create the namespaces at all (clone/unshare failed)."""
POWERLESS = re.compile(
    r"setting up [ug]id map: (?:Permission denied|Operation not permitted)"
    r"|loopback: Failed RTM_NEWADDR: Operation not permitted"
)
"""bwrap created a user namespace but got no rights in it (what AppArmor's restriction does)."""
NO_KERNEL_USERNS = "kernel does not support user namespaces"
CONTAINER_CGROUPS = ("docker", "containerd", "kubepods", "libpod")

NO_SANDBOX = (
    "Last resort, only for code you trust: --sandbox none (sandbox.kind=none in a config) runs the generated "
    "code UNISOLATED, as your user, with your files and network (only rlimits and a timeout apply)."
)
"""The opt-out and its risk, named in every start-up error."""


@dataclass(frozen=True)
class Host:
    """What this machine says about user namespaces; None where the file does not exist."""

    max_user_namespaces: str | None
    unprivileged_userns_clone: str | None
    apparmor_restrict_unprivileged_userns: str | None
    in_container: bool
    seccomp_filter: bool
    """A seccomp filter is on for this process (``Seccomp: 2``), e.g. Docker's default profile."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None  # this kernel has no such knob, or it is not ours to read


def read_host(root: Path | None = None) -> Host:
    """The host's user-namespace state, read under ``root`` (default ``HOST_ROOT``)."""
    root = HOST_ROOT if root is None else root
    status = _read(root / "proc/self/status") or ""
    seccomp = re.search(r"^Seccomp:\s*(\d+)", status, re.MULTILINE)
    cgroup = _read(root / "proc/1/cgroup") or ""
    container = ((root / ".dockerenv").exists() or (root / "run/.containerenv").exists()
                 or any(name in cgroup for name in CONTAINER_CGROUPS))  # fmt: skip
    return Host(
        max_user_namespaces=_read(root / "proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone=_read(root / "proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restrict_unprivileged_userns=_read(root / "proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        in_container=container,
        seccomp_filter=seccomp is not None and seccomp.group(1) == "2",
    )


def _persist(setting: str) -> str:
    """How to set a sysctl now and at every boot."""
    name = setting.partition("=")[0]
    return (f"sudo sysctl -w {setting} (and at every boot: echo '{setting}' | "
            f"sudo tee /etc/sysctl.d/60-{name.rpartition('.')[2]}.conf)")  # fmt: skip


def apparmor_profile(bwrap: str) -> str:
    """The AppArmor profile that lets ``bwrap`` (and only it) create user namespaces."""
    path = Path(bwrap).resolve()
    return ("abi <abi/4.0>,\ninclude <tunables/global>\n"
            f"profile bwrap {path} flags=(unconfined) {{\n  userns,\n}}\n")  # fmt: skip


def _apparmor_fix(bwrap: str) -> str:
    profile = apparmor_profile(bwrap).replace("\n", "\\n")
    return (f"Fix: give bwrap an AppArmor profile that allows user namespaces: printf '{profile}' | "
            "sudo tee /etc/apparmor.d/bwrap && sudo apparmor_parser -r /etc/apparmor.d/bwrap; "
            "or lift the restriction for every program: "
            + _persist("kernel.apparmor_restrict_unprivileged_userns=0") + ".")


def diagnose(bwrap_error: str, bwrap: str, host: Host | None = None) -> str | None:
    """``Cause: ...`` and ``Fix: ...`` lines for bwrap's error text, or None when it is not one of
    the known start-up failures (the caller then shows bwrap's own words only)."""
    refused, powerless = REFUSED.search(bwrap_error), POWERLESS.search(bwrap_error)
    if not (refused or powerless):
        return None
    if NO_KERNEL_USERNS in bwrap_error:
        return ("Cause: this kernel was built without user namespaces (CONFIG_USER_NS).\n"
                "Fix: boot a kernel with CONFIG_USER_NS=y, or install bwrap setuid root "
                "(sudo chmod u+s " + bwrap + ").")  # fmt: skip
    host = read_host() if host is None else host
    if refused and host.max_user_namespaces == "0":
        return ("Cause: user namespaces are switched off (user.max_user_namespaces = 0).\n"
                "Fix: " + _persist("user.max_user_namespaces=15000") + ".")  # fmt: skip
    if refused and host.unprivileged_userns_clone == "0":
        return ("Cause: the kernel forbids unprivileged user namespaces (kernel.unprivileged_userns_clone = 0, "
                "a knob of Debian-patched kernels).\nFix: " + _persist("kernel.unprivileged_userns_clone=1") + ".")
    # Before AppArmor: a container shows the host's sysctl, but its seccomp filter refuses first.
    if refused and host.in_container and host.seccomp_filter:
        return ("Cause: this is a container whose seccomp filter (Docker's default profile) blocks the "
                "clone/unshare calls that create namespaces.\n"
                "Fix: start the container with --security-opt seccomp=unconfined, or with a custom seccomp "
                "profile (--security-opt seccomp=profile.json) that allows clone, unshare, mount, umount2, "
                "pivot_root and setns; if bwrap then fails at a mount, add --security-opt apparmor=unconfined.")
    if host.apparmor_restrict_unprivileged_userns == "1":
        return ("Cause: AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns"
                " = 1, the default since Ubuntu 23.10/24.04): bwrap's namespace gets no rights.\n" + _apparmor_fix(bwrap))
    what = "refused to create namespaces" if refused else "refused bwrap rights in its user namespace"
    return (f"Cause: the kernel or a security policy {what}, and none of the known causes was found "
            f"({_describe(host)}).\nFix: check for seccomp filters (systemd RestrictNamespaces=, container "
            "profiles) and security modules (AppArmor, SELinux) that restrict user namespaces.")


def _describe(host: Host) -> str:
    """The state that was checked, ``absent`` for a knob this kernel does not have."""
    sysctls = {"user.max_user_namespaces": host.max_user_namespaces,
               "kernel.unprivileged_userns_clone": host.unprivileged_userns_clone,
               "kernel.apparmor_restrict_unprivileged_userns": host.apparmor_restrict_unprivileged_userns}  # fmt: skip
    shown = ", ".join(f"{name}={'absent' if value is None else value}" for name, value in sysctls.items())
    return f"{shown}, container={host.in_container}, seccomp filter={host.seccomp_filter}"


def startup_error(summary: str, bwrap_error: str, bwrap: str) -> str:
    """The whole message of a failed start: what happened (``summary``, with bwrap's own words), the
    cause and its fix where known, and the ``--sandbox none`` opt-out with its risk."""
    found = diagnose(bwrap_error, bwrap)
    return "\n".join([summary, *([found] if found else []), NO_SANDBOX])
