"""Hostile completions are contained, counted as failures, and the harness carries on."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.eval.problems import check_program
from llmfoundry_lite.sandbox import Sandbox, SandboxConfig, SandboxUnavailable
from llmfoundry_lite.sandbox import core as sandbox_module
from tests.conftest import FAST, PROBE


def probe(sandbox: Sandbox, body: str):
    """Run ``def attack():`` + ``body`` under check(); the attack 'works' if attack() returns True."""
    return sandbox.run(check_program(PROBE, body))


def test_honest_probe_passes_and_dishonest_fails(sandbox):
    assert probe(sandbox, "    return True\n").result == "passed"
    assert probe(sandbox, "    return False\n").result == "failed: "


def test_asserts_are_live_never_python_O(sandbox):
    r = probe(sandbox, "    import sys\n    assert False, 'asserts on'\n    return sys.flags.optimize == 0\n")
    assert r.result == "failed: asserts on"


def test_infinite_loop_times_out_and_is_killed(sandbox):
    r = probe(sandbox, "    while True:\n        pass\n")
    assert r.result == "timed out" and not r.passed
    assert r.wall_s < FAST.timeout + FAST.startup_allowance + 1.0


def test_sleeping_process_times_out(sandbox):
    assert probe(sandbox, "    import time\n    time.sleep(60)\n    return True\n").result == "timed out"


def _sandboxed_processes(marker: str) -> list[int]:
    """PIDs whose command line carries ``marker`` (the rlimits JSON of one sandbox)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode("utf-8", "replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue  # the process ended while we looked
    return pids


def test_fork_bomb_is_capped_and_leaves_no_process():
    cfg = SandboxConfig(timeout=1.0, startup_allowance=0.5, max_file_mb=13)  # 13: a marker in argv
    marker = str(13 << 20)
    bomb = ("    import os, time\n    for _ in range(500):\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n    return True\n")
    with Sandbox(cfg) as sb:
        r = probe(sb, bomb)
    assert not r.passed
    assert r.result.startswith("failed: [Errno 11]")  # fork refused by RLIMIT_NPROC
    deadline = time.monotonic() + 3
    while _sandboxed_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandboxed_processes(marker) == []


def test_memory_bomb_hits_the_address_space_limit(sandbox):
    r = probe(sandbox, "    block = bytearray(4 << 30)\n    block[::4096] = b'x' * len(block[::4096])\n    return True\n")
    assert r.result == "failed: " and not r.passed  # MemoryError has an empty message


def test_disk_fill_stops_at_the_tmpfs_size(sandbox):
    fill = ("    chunk = b'x' * (1 << 20)\n    for i in range(200):\n"
            "        with open(f'fill{i}', 'wb') as f:\n            f.write(chunk)\n    return True\n")
    assert probe(sandbox, fill).result == "failed: [Errno 28] No space left on device"


def test_one_huge_file_stops_at_the_file_size_limit(sandbox):
    r = probe(sandbox, "    with open('big', 'wb') as f:\n        f.write(b'x' * (40 << 20))\n    return True\n")
    assert r.result == "failed: [Errno 27] File too large"


def test_huge_output_is_capped(sandbox):
    r = probe(sandbox, "    while True:\n        print('x' * 65536)\n")
    assert r.result == "timed out"
    assert len(r.output) == FAST.max_output_bytes
    assert r.output_bytes > 10 * FAST.max_output_bytes


def test_network_is_unreachable_even_loopback_of_the_host(sandbox):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    try:
        body = (f"    import socket\n    socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n"
                "    socket.create_connection(('1.1.1.1', 53), timeout=1).close()\n    return True\n")
        r = probe(sandbox, body)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever connected to the host's listener
    finally:
        server.close()
    assert r.result == "failed: [Errno 111] Connection refused"  # the sandbox's own, empty loopback


def test_public_network_is_unreachable(sandbox):
    r = probe(sandbox, "    import socket\n    socket.create_connection(('1.1.1.1', 53), timeout=1).close()\n    return True\n")
    assert r.result == "failed: [Errno 101] Network is unreachable"


def test_cannot_write_outside_the_work_dir(sandbox, tmp_path):
    target = tmp_path / "pwned.txt"
    r = probe(sandbox, f"    open({str(target)!r}, 'w').write('x')\n    return True\n")
    assert not r.passed and "No such file or directory" in r.result
    assert not target.exists()
    r = probe(sandbox, "    open('/usr/pwned', 'w').write('x')\n    return True\n")
    assert r.result.startswith("failed: [Errno 30] Read-only file system") or "Permission denied" in r.result
    assert not Path("/usr/pwned").exists()


def test_cannot_delete_files_outside_the_work_dir(sandbox, tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    r = probe(sandbox, f"    import os\n    os.remove({str(victim)!r})\n    return True\n")
    assert not r.passed and "No such file or directory" in r.result
    assert victim.read_text() == "precious"


def test_cannot_read_files_from_home(sandbox):
    home = Path.home()
    files = sorted(p for p in home.iterdir() if p.is_file() and os.access(p, os.R_OK)) if home.is_dir() else []
    if not files:
        pytest.skip(f"no readable file in {home} to try to steal")
    r = probe(sandbox, f"    return len(open({str(files[0])!r}).read()) >= 0\n")
    assert not r.passed
    assert "No such file or directory" in r.result or "Permission denied" in r.result


def test_cannot_kill_the_parent_or_other_processes(sandbox):
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        body = (f"    import os, signal\n    for pid in ({os.getpid()}, {bystander.pid}):\n"
                "        try:\n            os.kill(pid, signal.SIGKILL)\n        except ProcessLookupError:\n"
                "            pass\n    return True\n")
        r = probe(sandbox, body)
        killed_own_parent = probe(sandbox, "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n")
        killed_all = probe(sandbox, "    import os, signal\n    os.kill(-1, signal.SIGKILL)\n")
        assert bystander.poll() is None  # still running
    finally:
        bystander.kill()
        bystander.wait()
    # The pids mean nothing in the sandbox's PID namespace, so the kill "succeeds" at nothing:
    # the attack returns True here, and that is fine; what matters is who is still alive.
    assert r.passed is True
    assert not killed_own_parent.passed and not killed_all.passed


@pytest.mark.parametrize(
    "exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "exit()", "quit()", "raise SystemExit(0)"]
)
def test_early_exit_with_status_0_is_a_failure(sandbox, exit_call):
    at_module_level = probe(sandbox, f"    return False\n{exit_call}\n")
    inside_check = probe(sandbox, f"    {exit_call}\n")
    assert not at_module_level.passed and not inside_check.passed
    assert at_module_level.result.startswith("failed: ")


def test_forged_verdicts_without_the_nonce_do_not_pass(sandbox):
    # One line, exactly what the runner writes, on every fd; a verdict line without the nonce on
    # stdout; then exit 0. Scored as samples are, the runner's line is not the candidate's to write.
    forge = ("    import os\n    for fd in range(3, 64):\n        try:\n"
             "            os.write(fd, b'passed\\n')\n        except OSError:\n"
             "            pass\n    print('0000 passed', flush=True)\n    os._exit(0)\n")
    r = execute_samples({PROBE["task_id"]: PROBE}, [{"task_id": PROBE["task_id"], "completion": forge}], sandbox, workers=1)[0]
    assert not r["passed"]
    assert r["result"] == "failed: the candidate process ended with status 0 before check() completed"


def test_spawned_shell_stays_inside(sandbox, tmp_path):
    target = tmp_path / "from_shell.txt"
    body = (f"    import subprocess\n    subprocess.run(['/bin/sh', '-c', 'echo pwned > {target}'])\n"
            f"    return subprocess.run(['cat', {str(target)!r}]).returncode == 0\n")
    r = probe(sandbox, body)
    assert not r.passed and r.result == "failed: "
    assert not target.exists()


def test_harness_carries_on_through_a_batch_of_attacks(sandbox, problems, tmp_path):
    hostile = ["    while True:\n        pass\n", "    import os\n    os._exit(0)\n",
               "    import os, signal\n    os.kill(-1, signal.SIGKILL)\n", "    x = ' ' * (8 << 30)\n    return True\n"]
    first = next(iter(problems.values()))
    probs = {PROBE["task_id"]: PROBE, first["task_id"]: first}
    samples = [{"task_id": PROBE["task_id"], "completion": h} for h in hostile]
    samples.insert(2, {"task_id": first["task_id"], "completion": first["canonical_solution"]})
    results = execute_samples(probs, samples, sandbox, workers=2)
    assert [r["passed"] for r in results] == [False, False, True, False, False]
    assert results[0]["result"] == "timed out"


def test_missing_bwrap_fails_with_install_hint(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y bubblewrap"):
        Sandbox(FAST)


def test_sandbox_none_warns_loudly_and_still_judges(capsys):
    with Sandbox(SandboxConfig(kind="none", timeout=1.0)) as sb:
        assert probe(sb, "    return True\n").passed
        assert probe(sb, "    import os\n    os._exit(0)\n").result.startswith("failed: process ended")
    assert "WITHOUT isolation" in capsys.readouterr().err


@pytest.mark.parametrize("prestart", [0, 2])
def test_each_program_gets_a_fresh_sandbox(prestart):
    leave_traces = ("    import os\n    open('trace', 'w').write('x')\n    if os.fork() == 0:\n"
                    "        import time\n        time.sleep(30)\n    return True\n")
    look_for_traces = ("    import os\n    procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                       "    return not os.path.exists('trace') and len(procs) <= 3\n")  # bwrap's init, the holder, python
    with Sandbox(SandboxConfig(timeout=1.0, startup_allowance=0.5, prestart=prestart), workers=1) as sb:
        assert probe(sb, leave_traces).passed
        assert probe(sb, look_for_traces).passed
        assert probe(sb, "    import os\n    return len([p for p in os.listdir('/proc') if p.isdigit()]) > 3\n").result == "failed: "


def test_undecodable_or_null_byte_programs_fail_without_harming_the_harness(sandbox):
    assert probe(sandbox, '    return "\ud800" is not None\n').result.startswith("failed: (unicode error)")
    assert probe(sandbox, "    return True\x00\n").result == "failed: source code string cannot contain null bytes"
    assert probe(sandbox, "    return True\n").passed


def test_flooding_every_pipe_is_bounded(sandbox):
    flood = ("    import os\n    junk = b'passed\\n' * 10000\n    while True:\n        for fd in range(1, 64):\n"
             "            try:\n                os.write(fd, junk)\n            except OSError:\n                pass\n")
    r = probe(sandbox, flood)
    assert r.result == "timed out" and len(r.output) == FAST.max_output_bytes


def test_filling_dev_shm_stops_at_its_cap_and_dev_is_read_only(sandbox):
    # 64 files of 16 MiB (each under RLIMIT_FSIZE) = 1 GiB: an uncapped /dev/shm would take it from host RAM
    fill = ("    chunk = b'x' * (1 << 20)\n    written = 0\n    try:\n        for i in range(64):\n"
            "            with open(f'/dev/shm/fill{i}', 'wb') as f:\n                for _ in range(16):\n"
            "                    f.write(chunk)\n                    written += 1\n"
            "    finally:\n        print('written MiB', written)\n    return True\n")
    r = probe(sandbox, fill)
    assert r.result == "failed: [Errno 28] No space left on device"
    written = int(r.output.split("written MiB")[1].split()[0])
    assert written <= FAST.shm_mb  # stopped at the cap, not after 1024 MiB
    r = probe(sandbox, "    open('/dev/pwned', 'w').write('x' * 1000)\n    return True\n")
    assert r.result == "failed: [Errno 30] Read-only file system: '/dev/pwned'"
    assert probe(sandbox, "    open('/dev/null', 'w').write('x')\n    return True\n").passed  # devices still work


FORGE_BY_FRAMES = """    import gc, os, re, sys
    hexes = set()
    def grab(value):
        if isinstance(value, bytes):
            value = value.decode('latin-1')
        if isinstance(value, str):
            hexes.update(h for h in re.findall('[0-9a-f]{32}', value) if len(set(h)) >= 8)  # random-looking
    frame = sys._getframe()
    while frame is not None:  # every frame of this process: locals, globals, constants
        for value in (*frame.f_locals.values(), *frame.f_globals.values(), *frame.f_code.co_consts):
            grab(value)
        frame = frame.f_back
    for obj in gc.get_objects():  # every tracked container and what it holds
        for value in (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()):
            grab(value)
    for path in ('/proc/self/cmdline', '/proc/self/environ', f'/proc/{os.getppid()}/cmdline',
                 f'/proc/{os.getppid()}/environ', f'/proc/{os.getppid()}/mem'):
        try:
            grab(open(path, 'rb').read(1 << 20))
        except OSError:
            pass
    for nonce in hexes:  # every candidate nonce, on every fd this process or its parent holds
        line = f'{nonce} passed\\n'.encode()
        for fd in range(3, 64):
            try:
                os.write(fd, line)
            except OSError:
                pass
        for fd in range(64):
            try:
                with open(f'/proc/{os.getppid()}/fd/{fd}', 'wb') as f:
                    f.write(line)
            except OSError:
                pass
    print('candidates', len(hexes), flush=True)
    os._exit(0)
"""


def test_nonce_cannot_be_found_by_frames_gc_or_proc_to_forge_a_pass(sandbox):
    r = probe(sandbox, FORGE_BY_FRAMES)
    assert not r.passed
    assert r.result == "failed: process ended with status 0 before check() completed"
    assert "candidates 0" in r.output  # no 32-hex secret anywhere the program can look


def test_parent_supervisor_memory_and_fds_are_out_of_reach(sandbox):
    body = ("    import os\n    ppid = os.getppid()\n    errors = []\n"
            "    for path in (f'/proc/{ppid}/mem', f'/proc/{ppid}/environ', f'/proc/{ppid}/fd/0'):\n"
            "        try:\n            open(path, 'rb').close()\n        except OSError as e:\n"
            "            errors.append(e.errno)\n    print(errors)\n    return len(errors) == 3\n")
    r = probe(sandbox, body)
    assert r.passed, r.output  # every open of the supervisor's /proc entries was refused


def test_no_nested_user_namespace_so_no_uncapped_tmpfs(sandbox):
    # In a user namespace of its own a program could mount a tmpfs of half the host's RAM.
    body = ("    import ctypes\n    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER\n"
            "        raise OSError(ctypes.get_errno(), 'unshare')\n    return True\n")
    assert probe(sandbox, body).result == "failed: [Errno 28] unshare"  # ENOSPC: max_user_namespaces is 0 inside
    spawned = ("    import subprocess\n"
               "    return subprocess.run(['unshare', '--user', '--mount', 'true']).returncode == 0\n")
    assert probe(sandbox, spawned).result == "failed: "  # an exec'd program cannot either


CONTAINED = ("    import os\n    status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines()\n"
             "                  if ':\\t' in line)\n"
             "    caps = {k: int(status[k], 16) for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')}\n"
             "    fds = {}\n    for fd in os.listdir('/proc/self/fd'):\n        try:\n"
             "            fds[fd] = os.readlink(f'/proc/self/fd/{fd}')\n"
             "        except FileNotFoundError:  # listdir's own fd\n            pass\n"
             "    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
             "    print(caps, status['NoNewPrivs'].strip(), os.getppid(), pids, fds)\n"
             "    return (not any(caps.values()) and status['NoNewPrivs'].strip() == '1' and os.getppid() == 0\n"
             "            and pids == [1, 2, os.getpid()]\n"
             "            and not any('socket' in t or 'pidfd' in t for t in fds.values()))\n")


def test_program_holds_no_capability_and_cannot_see_its_supervisor(sandbox):
    r = probe(sandbox, CONTAINED)
    assert r.passed, r.output  # no capability, no way to gain one, no supervisor or zygote in sight, no fd of theirs


def test_joining_namespaces_one_by_one_contains_programs_the_same_way(monkeypatch):
    # Kernels before 5.8 cannot setns() on a pidfd: the supervisor then joins the holder's
    # namespaces one /proc/<pid>/ns file at a time. Forced here, it must give the same sandbox.
    monkeypatch.setattr(sandbox_module, "JOIN_NAMESPACES", "nsfd")
    with Sandbox(FAST) as sb:
        r = probe(sb, CONTAINED)
        assert r.passed, r.output
        assert probe(sb, "    import os\n    return open('/proc/2/cmdline').read() == '/usr/bin/cat\\0'\n").passed
        r = probe(sb, "    import socket\n    socket.create_connection(('1.1.1.1', 53), timeout=1).close()\n    return True\n")
        assert r.result == "failed: [Errno 101] Network is unreachable"
        assert probe(sb, "    open('/usr/bin/llmfl-probe', 'w')\n    return True\n").result.startswith("failed: [Errno 30]")


def test_a_killed_zygote_is_replaced_and_close_keeps_the_sandbox_usable():
    with Sandbox(FAST) as sb:
        assert probe(sb, "    return True\n").passed
        sb._zygote._proc.kill()  # killed from outside: the next program starts a new one
        sb._zygote._proc.wait()
        sb.close()  # also drops the prestarted sandboxes the dead zygote had forked
        assert probe(sb, "    return True\n").passed
        sb._zygote._proc.kill()
        sb._zygote._proc.wait()
        results = [probe(sb, "    return True\n") for _ in range(4)]  # the spares died with it
    assert all(r.passed or r.result == "error: the sandbox's supervisor ended without a verdict" for r in results)
    assert results[-1].passed


def test_a_sandbox_that_cannot_be_set_up_says_why(tmp_path):
    with pytest.raises(SandboxUnavailable, match="bwrap did not start: bwrap: Can't find source path"):
        Sandbox(FAST, binds=(tmp_path / "missing",))


def test_a_host_process_with_over_1024_open_descriptors_can_still_run_programs():
    """A long test session or a busy server holds many descriptors, so the sandbox's pipes, pidfds and
    zygote socket get numbers above 1024, which select() refuses ("filedescriptor out of range")."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert max(held) >= 1024
        with Sandbox(FAST) as sb:
            assert probe(sb, "    return True\n").result == "passed"
            assert probe(sb, "    import time\n    time.sleep(5)\n").result == "timed out"
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
