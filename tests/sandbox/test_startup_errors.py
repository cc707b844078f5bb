"""When bwrap cannot start, the error names the cause, its fix and the ``--sandbox none`` opt-out.

Each case puts a fake ``bwrap`` first on PATH (found by the real ``shutil.which`` lookup) that prints
one of bwrap's real start-up errors and exits 1, and plays the host's state (sysctls, container
markers, seccomp) with a fake tree under ``diagnose.HOST_ROOT``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from llmfoundry_lite.sandbox import Sandbox, SandboxUnavailable, diagnose
from tests.conftest import FAST

REPO = Path(__file__).parents[2]
APPARMOR = "proc/sys/kernel/apparmor_restrict_unprivileged_userns"
USERNS_CLONE = "proc/sys/kernel/unprivileged_userns_clone"
MAX_USERNS = "proc/sys/user/max_user_namespaces"
OPEN_HOST = {MAX_USERNS: "63000", USERNS_CLONE: "1", APPARMOR: "0", "proc/self/status": "Seccomp:\t0\n"}
"""A host where nothing restricts user namespaces; each case changes what its cause needs."""

UID_MAP = "bwrap: setting up uid map: Permission denied"
LOOPBACK = "bwrap: loopback: Failed RTM_NEWADDR: Operation not permitted"
NO_PERMISSION_OLD = ("bwrap: No permissions to creating new namespace, likely because the kernel does not allow "
                     "non-privileged user namespaces. On e.g. debian this can be enabled with "
                     "'sysctl kernel.unprivileged_userns_clone=1'.")  # fmt: skip
NO_PERMISSION = NO_PERMISSION_OLD.replace("to creating new", "to create a new")  # bubblewrap >= 0.11.1
CREATE_FAILED = "bwrap: Creating new namespace failed: Operation not permitted"
ENOSPC = "bwrap: Creating new namespace failed: nesting depth or /proc/sys/user/max_*_namespaces exceeded (ENOSPC)"
NO_KERNEL_USERNS = ("bwrap: Creating new namespace failed, likely because the kernel does not support user "
                    "namespaces.  bwrap must be installed setuid on such systems.")  # fmt: skip


@pytest.fixture
def fake_bwrap(monkeypatch):
    """``install(message)`` puts a ``bwrap`` first on PATH that prints ``message`` to stderr and exits 1
    (its ``--help`` lists ``--disable-userns``, as bubblewrap >= 0.8 does); returns its path. The folder
    is world-readable: as root, the zygote that runs it is ``nobody``."""
    folder = Path(tempfile.mkdtemp(prefix="fake-bwrap-"))
    folder.chmod(0o755)

    def install(message: str) -> Path:
        script = folder / "bwrap"
        script.write_text(f'#!/bin/sh\nif [ "$1" = --help ]; then echo "    --disable-userns"; exit 0; fi\n'
                          f"echo {shlex.quote(message)} >&2\nexit 1\n")  # fmt: skip
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        return script

    yield install
    shutil.rmtree(folder)


@pytest.fixture
def host(tmp_path, monkeypatch):
    """``play(files)`` makes ``{relative path: text}`` the host's state as the diagnosis reads it."""

    def play(files: dict[str, str]) -> None:
        root = tmp_path / "host"
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        monkeypatch.setattr(diagnose, "HOST_ROOT", root)

    return play


def start_error(message: str, fake_bwrap, host, state: dict[str, str]) -> str:
    host({**OPEN_HOST, **state})
    fake_bwrap(message)
    with pytest.raises(SandboxUnavailable) as err:
        Sandbox(FAST)
    text = str(err.value)
    assert message in text  # bwrap's own words are always there
    assert "--sandbox none" in text and "UNISOLATED, as your user" in text
    return text


@pytest.mark.parametrize("message", [UID_MAP, LOOPBACK], ids=["uid-map", "loopback"])
def test_ubuntu_apparmor_restriction_names_the_sysctl_and_a_bwrap_profile(message, fake_bwrap, host):
    text = start_error(message, fake_bwrap, host, {APPARMOR: "1"})
    found = shutil.which("bwrap")
    assert found is not None and "fake-bwrap-" in found  # the real lookup found the fake
    assert "Cause: AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1" in text
    assert f"profile bwrap {Path(found).resolve()} flags=(unconfined) {{\\n  userns,\\n}}" in text
    assert "sudo apparmor_parser -r /etc/apparmor.d/bwrap" in text
    assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in text


@pytest.mark.parametrize("message", [NO_PERMISSION_OLD, NO_PERMISSION], ids=["bwrap<0.11.1", "bwrap>=0.11.1"])
def test_debian_userns_clone_sysctl_names_the_setting_to_flip(message, fake_bwrap, host):
    text = start_error(message, fake_bwrap, host, {USERNS_CLONE: "0"})
    assert "Cause: the kernel forbids unprivileged user namespaces (kernel.unprivileged_userns_clone = 0" in text
    assert "sudo sysctl -w kernel.unprivileged_userns_clone=1" in text
    assert "/etc/sysctl.d/" in text and "apparmor" not in text.lower()


def test_max_user_namespaces_zero_names_its_sysctl(fake_bwrap, host):
    text = start_error(ENOSPC, fake_bwrap, host, {MAX_USERNS: "0"})
    assert "Cause: user namespaces are switched off (user.max_user_namespaces = 0)" in text
    assert "sudo sysctl -w user.max_user_namespaces=15000" in text


@pytest.mark.parametrize(("message", "marker"), [
    (NO_PERMISSION, {".dockerenv": ""}),  # bwrap as an ordinary user (or as nobody, for a root evaluator)
    (CREATE_FAILED, {"proc/1/cgroup": "0::/system.slice/docker-4f3a9c.scope\n"}),  # bwrap as root
], ids=["dockerenv-user", "cgroup-root"])  # fmt: skip
def test_docker_default_seccomp_profile_names_the_security_opt(message, marker, fake_bwrap, host):
    # The host's AppArmor sysctl shows through in a container; the seccomp filter refuses first.
    state = {**marker, "proc/self/status": "Name:\tpython\nSeccomp:\t2\nSeccomp_filters:\t1\n", APPARMOR: "1"}
    text = start_error(message, fake_bwrap, host, state)
    assert "Cause: this is a container whose seccomp filter (Docker's default profile)" in text
    assert "--security-opt seccomp=unconfined" in text and "--security-opt seccomp=profile.json" in text
    assert "apparmor_parser" not in text


def test_kernel_without_user_namespaces_says_so(fake_bwrap, host):
    text = start_error(NO_KERNEL_USERNS, fake_bwrap, host, {})
    assert "Cause: this kernel was built without user namespaces (CONFIG_USER_NS)" in text


def test_a_known_refusal_on_an_open_host_shows_what_was_checked(fake_bwrap, host):
    text = start_error(CREATE_FAILED, fake_bwrap, host, {})
    checked = ("none of the known causes was found (user.max_user_namespaces=63000, kernel.unprivileged_userns_clone=1, "
               "kernel.apparmor_restrict_unprivileged_userns=0, container=False, seccomp filter=False)")
    assert checked in text


def test_an_unknown_failure_shows_bwraps_own_words_and_the_opt_out(fake_bwrap, host):
    message = "bwrap: Can't mount proc on /newroot/proc: Operation not permitted"
    text = start_error(message, fake_bwrap, host, {APPARMOR: "1", USERNS_CLONE: "0"})
    assert "bwrap did not start: " + message in text
    assert "Cause:" not in text and "Fix:" not in text


def test_the_command_line_prints_the_cause_in_one_error_without_a_traceback(fake_bwrap, tmp_path):
    fake_bwrap(UID_MAP)
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": ""}\n')
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}  # this checkout's code, not the venv's install
    proc = subprocess.run([sys.executable, "eval/humaneval.py", "--samples", str(samples)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error: the bwrap sandbox does not work on this machine" in proc.stderr and UID_MAP in proc.stderr
    assert "--sandbox none" in proc.stderr
