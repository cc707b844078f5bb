"""How the memory of a whole sample is bounded, not just of each of its processes.

RLIMIT_AS holds per process, and a sample may start ``max_processes`` of them: alone it would let
a sample use that many times ``memory_mb``. Two bounds hold the total, one step at a time (the
limit of a step is its own RLIMIT_AS: a compiler's step gets the compiler's memory):

- **cgroup v2** (``memory.max``, ``memory.swap.max`` 0, ``pids.max``): every supervisor moves
  itself into a fresh cgroup of its own before it starts bwrap, so the holder and every process
  of the sample are inside; the kernel's OOM killer stops the sample at the limit, read back from
  ``memory.events`` as ``failed: out of memory``. The evaluator makes one group per ``Sandbox``
  (``<base>/llmfl-<pid>-<n>``, holding no process itself, as cgroup v2 wants of a cgroup whose
  children get controllers), the zygote's leaf ``zygote/`` in it, and the zygote removes each
  sample's cgroup once its processes are gone. Needs a cgroup v2 directory with the ``memory`` and
  ``pids`` controllers that this user may write (systemd ``Delegate=yes``, or a container with a
  writable, delegated cgroup2).
- **fallback** (everywhere else, e.g. cgroup v1 hosts and most Kubernetes pods): RLIMIT_AS per
  process, plus a watchdog in the supervisor that sums the resident anonymous memory of every
  process of the sandbox (``/proc/<pid>/statm``, the sandbox's own ``/proc``; with ``--sandbox
  none``, the supervisor's process tree) every ``tick_ms`` while a step runs, and SIGKILLs the
  whole sandbox when the sum passes the step's limit. It can overshoot by what the sample
  allocates within one tick, and counts pages a fork still shares with its parent once per process
  (conservative).

Standard library only: the zygote imports this module as ``sandbox_memory`` (``boot`` ships it);
the evaluator imports it as ``llmfoundry_lite.sandbox.memory`` to find the cgroup and prepare it.
"""

import errno
import os
import signal

TICK_MS = 5
"""How often the fallback watchdog sums the sample's memory while a step runs."""
PIDS_HEADROOM = 8
"""pids.max above the step's RLIMIT_NPROC: the supervisor, bwrap and the holder live in the cgroup too."""
_CONTROLLERS = ("memory", "pids")


# ---- the evaluator's side: find a delegated cgroup v2 directory, make a group per Sandbox ----


def cgroup2_mount(mountinfo: str) -> str | None:
    """The mount point of the cgroup v2 filesystem in ``/proc/self/mountinfo``'s text, if any."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " in line and fields[fields.index("-") + 1] == "cgroup2":
            return fields[4]
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path (the ``0::<path>`` line of ``/proc/self/cgroup``)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def find_base(configured: str | None) -> tuple[str | None, str]:
    """The cgroup v2 directory to make sandbox groups under, with ``memory`` and ``pids`` enabled
    for its children: (path, "") or (None, why it cannot be used)."""
    if configured is not None:
        base = os.path.abspath(configured)
        if not is_cgroup2(base):
            return None, f"sandbox.cgroup_root={configured} is not on a cgroup2 filesystem"
    else:
        mount = cgroup2_mount(_read("/proc/self/mountinfo"))
        if mount is None:
            return None, "no cgroup2 filesystem is mounted"
        own = own_cgroup(_read("/proc/self/cgroup"))
        if own is None:
            return None, "this process is in no cgroup v2 hierarchy (/proc/self/cgroup has no 0:: line)"
        base = os.path.normpath(mount + own)
    try:
        available = _read(os.path.join(base, "cgroup.controllers")).split()
    except OSError as exc:
        return None, f"cannot read {base}/cgroup.controllers: {exc.strerror}"
    missing = [c for c in _CONTROLLERS if c not in available]
    if missing:
        return None, (f"the cgroup v2 directory {base} has no {' or '.join(missing)} controller (cgroup.controllers: "
                      f"{' '.join(available) or 'none'}; on a cgroup v1 or hybrid host memory is v1's)")
    if not (os.access(base, os.W_OK) and os.access(os.path.join(base, "cgroup.procs"), os.W_OK)):
        return None, f"{base} is not delegated to uid {os.geteuid()} (it cannot create cgroups there or move processes)"
    why = _enable_controllers(base, own_leaf=configured is None)
    return (None, why) if why else (base, "")


def is_cgroup2(path: str) -> bool:
    """Whether ``path`` lies on a cgroup2 mount (tests replace this to use a fake tree)."""
    mount = cgroup2_mount(_read("/proc/self/mountinfo"))
    return mount is not None and (path == mount or path.startswith(mount.rstrip("/") + "/"))


def _enable_controllers(base: str, own_leaf: bool) -> str:
    """Enable memory and pids for ``base``'s children; "" or why not. cgroup v2 allows it only in
    a cgroup that holds no process: when ``base`` is our own cgroup and we are its only process
    (``systemd-run --scope -p Delegate=yes``), we move into a leaf of it first."""
    control = os.path.join(base, "cgroup.subtree_control")
    if all(c in _read(control).split() for c in _CONTROLLERS):
        return ""
    try:
        _write(control, " ".join("+" + c for c in _CONTROLLERS))
        return ""
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            return f"cannot enable memory and pids in {control}: {exc.strerror}"
    procs = _read(os.path.join(base, "cgroup.procs")).split()
    if not own_leaf or procs != [str(os.getpid())]:
        return (f"{base} holds processes ({len(procs)}), and cgroup v2 gives controllers to the children of a "
                "cgroup without processes only; set sandbox.cgroup_root to a delegated directory that has none")
    leaf = os.path.join(base, "llmfl-evaluator")
    os.makedirs(leaf, exist_ok=True)
    move(0, leaf)
    try:
        _write(control, " ".join("+" + c for c in _CONTROLLERS))
    except OSError as exc:
        return f"cannot enable memory and pids in {control}: {exc.strerror}"
    return ""


def move(pid: int, cgroup: str) -> None:
    """Move process ``pid`` (0: this one) into ``cgroup``."""
    _write(os.path.join(cgroup, "cgroup.procs"), str(pid))


def make_group(base: str, owner: int | None) -> str:
    """A new group for one ``Sandbox``'s samples under ``base`` (controllers enabled for its
    children) with the zygote's leaf ``zygote/``; ``owner`` (the zygote's uid when it differs
    from ours) gets what a delegation grants: the directories and their ``cgroup.procs``."""
    for n in range(1000):
        group = os.path.join(base, f"llmfl-{os.getpid()}-{n}")
        try:
            os.mkdir(group)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, f"no free sandbox group name under {base}")
    _write(os.path.join(group, "cgroup.subtree_control"), " ".join("+" + c for c in _CONTROLLERS))
    zygote = os.path.join(group, "zygote")
    os.mkdir(zygote)
    if owner is not None and owner != os.geteuid():
        for path in (group, zygote, os.path.join(group, "cgroup.procs"), os.path.join(zygote, "cgroup.procs")):
            if os.path.exists(path):  # cgroupfs has every file; a fake tree (tests) only directories
                os.chown(path, owner, -1)
    return group


def remove_group(group: str, whole: bool = True) -> list[str]:
    """Remove a group's cgroups (their processes must be gone) and, when ``whole``, the group with
    its zygote's leaf; returns the paths left (still populated)."""
    left = []
    for name in sorted(os.listdir(group)):
        path = os.path.join(group, name)
        if os.path.isdir(path) and (whole or name != "zygote"):
            try:
                os.rmdir(path)
            except OSError:
                left.append(path)
    if whole:
        try:
            os.rmdir(group)
        except OSError:
            left.append(group)
    return left


# ---- the supervisor's side (in the zygote): one sample's bound ----


def _limit(limits: str, number: int) -> int:
    """The hard limit of rlimit ``number`` in a step's ``<number>=soft:hard,...`` spec (0: unset)."""
    for item in limits.split(","):
        key, _, values = item.partition("=")
        if key == str(number):
            return int(values.partition(":")[2])
    return 0


class Bound:
    """One sample's total memory bound, made by its supervisor. ``spec`` comes from the zygote's
    config: ``mode`` (``cgroup`` or ``fallback``), ``group``, ``tick_ms``, ``memory_mb``,
    ``processes``, ``rlimit_as`` and ``rlimit_nproc`` (resource numbers; no ``resource`` import here)."""

    def __init__(self, spec: dict, sandboxed: bool) -> None:
        self.spec = spec
        self.cgroup = spec["mode"] == "cgroup"
        self.tick_s = spec["tick_ms"] / 1000
        self.sandboxed = sandboxed
        self.pid1 = -1
        """pidfd of the sandbox's PID 1 (SIGKILL it and the whole sandbox goes)."""
        self.limit = spec["memory_mb"] << 20
        self.over: str | None = None
        """Why the watchdog killed the sample; None while it has not."""
        self._dir = -1
        self._ooms = 0
        self._page = os.sysconf("SC_PAGE_SIZE")

    def join(self, name: str) -> None:
        """cgroup mode: make the sample's cgroup ``<group>/<name>`` and move this process into it
        (before bwrap starts: all that follows is forked from here). Its directory stays open so
        that limits and events are reached after the mount namespace changes."""
        if not self.cgroup:
            return
        path = os.path.join(self.spec["group"], name)
        os.mkdir(path)
        self._dir = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self._set("memory.max", self.limit)
        self._set("pids.max", self.spec["processes"] + PIDS_HEADROOM)
        if os.path.exists(os.path.join(path, "memory.swap.max")):
            self._set("memory.swap.max", 0)
        self._set("cgroup.procs", 0)

    def _set(self, name: str, value: int) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self._dir)
        try:
            os.write(fd, b"%d\n" % value)
        finally:
            os.close(fd)

    def _oom_kills(self) -> int:
        try:
            fd = os.open("memory.events", os.O_RDONLY, dir_fd=self._dir)
        except FileNotFoundError:
            return 0
        try:
            text = os.read(fd, 4096).decode()
        finally:
            os.close(fd)
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def step(self, step: dict) -> None:
        """A step starts: its limit is its own RLIMIT_AS (and RLIMIT_NPROC for pids.max)."""
        self.limit = (_limit(step["limits"], self.spec["rlimit_as"]) or self.spec["memory_mb"] << 20)
        if self.cgroup:
            self._set("memory.max", self.limit)
            self._set("pids.max", (_limit(step["limits"], self.spec["rlimit_nproc"]) or self.spec["processes"])
                      + PIDS_HEADROOM)
            self._ooms = self._oom_kills()

    def verdict(self) -> str | None:
        """After a step: ``failed: out of memory ...`` when the bound stopped it, else None."""
        if self.over is not None:
            return self.over
        if self.cgroup and self._oom_kills() > self._ooms:
            return f"failed: out of memory (cgroup memory.max {self.limit >> 20} MiB for the whole sample)"
        return None

    @property
    def watching(self) -> bool:
        return not self.cgroup

    def _pids(self) -> list[int]:
        """Every process of the sample: the sandbox's own /proc lists only them; without a
        sandbox, the supervisor's descendants (it is their subreaper)."""
        if self.sandboxed:
            return [int(name) for name in os.listdir("/proc") if name.isdigit()]
        found, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                try:
                    with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                        children = [int(c) for c in f.read().split()]
                except OSError:
                    continue
                found += children
                todo += children
        return found

    def resident(self) -> tuple[int, int]:
        """(bytes of resident anonymous memory, processes) of the sample now."""
        total = count = 0
        for pid in self._pids():
            try:
                fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
            except OSError:
                continue  # ended meanwhile
            try:
                fields = os.read(fd, 256).split()
            except OSError:
                continue
            finally:
                os.close(fd)
            if len(fields) > 2:
                total += (int(fields[1]) - int(fields[2])) * self._page  # resident - file/shmem-backed
                count += 1
        return total, count

    def check(self) -> bool:
        """The watchdog's tick: True (and the sample killed) when it is over its limit."""
        total, count = self.resident()
        if total <= self.limit:
            return False
        self.over = (f"failed: out of memory ({total >> 20} MiB in {count} processes, "
                     f"limit {self.limit >> 20} MiB for the whole sample)")
        self.kill()
        return True

    def kill(self) -> None:
        if self.pid1 >= 0:
            try:
                signal.pidfd_send_signal(self.pid1, signal.SIGKILL)  # the PID namespace goes with it
            except ProcessLookupError:
                pass
            return
        for _ in range(100):  # processes may fork meanwhile: until none is left
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def sweep(group: str | None, running: dict[int, str], dying: list[str], reaped: list[int]) -> None:
    """The zygote's share: the supervisors in ``reaped`` have ended (``running``: supervisor pid →
    its cgroup's name), so their cgroups go as soon as their last processes have (``dying``: the
    names still to remove, tried again on every call)."""
    if group is None:
        return
    dying += [running.pop(pid) for pid in reaped if pid in running]
    left = []
    for name in dying:
        try:
            os.rmdir(os.path.join(group, name))
        except FileNotFoundError:
            pass
        except OSError:  # still populated (EBUSY), or a fake tree's plain files (tests)
            left.append(name)
    dying[:] = left
