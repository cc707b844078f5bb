"""The zygote's kernel calls: libc through ``ctypes``, rlimits, fds, and entering a sandbox.

Part of the zygote's code (``child.py``; shipped with it by ``boot``, imported
there as the top-level module ``sandbox_kernel``): standard library only, no imports from this
project.

``enter_sandbox`` is a supervisor's steps 1-2: it starts a fresh bubblewrap sandbox whose only
command is ``cat`` (the *holder*: it keeps the namespaces alive, and echoing one byte says the
sandbox is fully set up), joins all of the holder's namespaces (one ``setns`` on a pidfd, the user
namespace first so the capabilities it gets are the sandbox's own; on kernels before 5.8, one
``setns`` per ``/proc/<pid>/ns`` file) and drops every capability (effective, permitted,
inheritable, ambient, bounding) with ``no_new_privs`` set, so none can be regained.
"""

import ctypes
import errno
import json
import os

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
_CLONE_NEWNS, _CLONE_NEWCGROUP, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_ALL_NAMESPACES = (_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWNET | _CLONE_NEWIPC
                   | _CLONE_NEWUTS | _CLONE_NEWCGROUP)  # fmt: skip
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_NS_GET_PARENT = 0xB702  # _IO(0xb7, 0x2)
_LIBC = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _RLimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int = 0) -> None:
    check(_LIBC.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option}, {arg})")


def _drop_privileges(last_cap: int) -> None:
    """No capability left (effective, permitted, inheritable, ambient, bounding) and none to gain."""
    prctl(_PR_SET_NO_NEW_PRIVS, 1)
    prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(last_cap + 1):
        prctl(_PR_CAPBSET_DROP, cap)
    check(_LIBC.capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), (_CapData * 2)()), "capset")


def apply_limits(spec: str) -> None:
    """rlimits as ``<RLIMIT number>=soft:hard,...``, set with prlimit(2)."""
    for item in filter(None, spec.split(",")):
        number, _, values = item.partition("=")
        soft, _, hard = values.partition(":")
        limit = _RLimit(int(soft), int(hard))
        check(_LIBC.prlimit(0, int(number), ctypes.byref(limit), None), f"prlimit({number}, {soft}, {hard})")


def close_fds_except(*keep: int) -> None:
    """Close every fd >= 3 but ``keep``."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def stdin_from_devnull() -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    return data


def enter_sandbox(holder_argv: list[str], last_cap: int, join: str) -> int:
    """Start the holder sandbox, join all its namespaces, drop every capability; returns a pidfd
    of the sandbox's PID 1 (SIGKILL it to tear the sandbox down)."""
    for fd in map(int, os.listdir("/proc/self/fd")):  # no fd of ours may leak into the sandbox
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the fd listdir itself used, already closed
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    info_r, info_w = os.pipe()
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
               (os.POSIX_SPAWN_DUP2, err_w, 2), (os.POSIX_SPAWN_DUP2, info_w, 3)]  # fmt: skip
    os.posix_spawn(holder_argv[0], holder_argv, dict(os.environ), file_actions=actions)
    for fd in (in_r, out_w, info_w, err_w):
        os.close(fd)
    info = read_all(info_r)  # bwrap closes it once PID 1 exists
    os.close(info_r)
    try:
        os.write(in_w, b"\n")  # the holder echoes it once it runs, i.e. once the sandbox is set up
        ready = os.read(out_r, 1) == b"\n"
    except BrokenPipeError:  # bwrap gave up before the holder ran
        ready = False
    os.close(out_r)
    if not ready:
        raise OSError(f"bwrap did not start: {read_all(err_r).decode('utf-8', 'replace').strip()[-1500:]}")
    os.close(err_r)
    pid = json.loads(info)["child-pid"]
    pid1 = os.pidfd_open(pid)
    # The holder is alive (it just echoed), so PID 1 is too: the pidfd names the right process.
    # in_w stays open, without close-on-exec cleared: closing it (at exit) would end the holder.
    if join == "pidfd" and _LIBC.setns(pid1, _ALL_NAMESPACES) == 0:
        pass
    elif join == "pidfd" and ctypes.get_errno() != errno.EINVAL:
        check(-1, "setns into the sandbox")
    else:  # a kernel before 5.8 (no setns on a pidfd), or asked for
        _join_one_by_one(pid)
    _drop_privileges(last_cap)
    return pid1


def _join_one_by_one(pid: int) -> None:
    """setns into each of ``pid``'s namespaces: its outermost user namespace first (caps there
    cover everything the sandbox owns), then the others, then the inner user namespaces."""
    paths = [f"/proc/{pid}/ns/{name}" for name in ("mnt", "pid", "net", "ipc", "uts", "cgroup")]
    others = [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in paths]
    chain = [os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)]
    ours = os.stat("/proc/self/ns/user").st_ino
    while True:  # walk up to the child of our own user namespace
        parent = _LIBC.ioctl(chain[-1], _NS_GET_PARENT)
        check(0 if parent >= 0 else -1, "ioctl(NS_GET_PARENT)")
        if os.fstat(parent).st_ino == ours:
            os.close(parent)
            break
        chain.append(parent)
    order = [chain[-1], *others, *reversed(chain[:-1])]
    names = [os.readlink(f"/proc/self/fd/{fd}") for fd in order]  # once in its mnt ns, /proc is the sandbox's
    try:
        for fd, name in zip(order, names, strict=True):
            check(_LIBC.setns(fd, 0), f"setns({name})")
    finally:
        for fd in [*others, *chain]:
            os.close(fd)
