"""A control group per sandbox, so that memory and process limits bind the whole sandbox, not each process.

rlimits count per process (four processes each get the whole address-space limit) or per user (all
sandboxes run as uid 65534 and share one process count). A cgroup counts what the kernel charges
to the group: anonymous memory, page cache, shared memory (SysV, POSIX, memfd), tmpfs pages and
the kernel memory of their inodes; and every process and thread.

Where the groups go (`placement()`, found once per process):

- cgroup v2, when the agent's own group is writable and offers the memory and pids controllers
  (a delegated subtree: `systemd-run --user --scope -p Delegate=yes`, or a container's root).
  A v2 group with processes cannot have children with controllers, so when the agent is alone in
  its group it first moves itself into a leaf `qwq-agent` of it; if others share the group, no luck.
- cgroup v1, as root: a child of the agent's group in the memory and in the pids hierarchy.

A sandbox's processes enter its group before bubblewrap starts (`enter_command`, which also makes
them the OOM killer's first choice), so nothing escapes the count. This module does not kill runs
on its own: the kernel's OOM killer and the pids limit do, inside the group only.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "qwq-sandbox-"
_counter = itertools.count()


class CgroupUnavailable(Exception):
    """No writable cgroup with the memory and pids controllers; the message says why."""


@dataclass(frozen=True)
class Placement:
    """Where this process makes its sandboxes' groups."""

    version: int
    """1 or 2."""
    memory: Path
    """The parent directory for the memory controller (in v2, for both)."""
    pids: Path
    """The parent directory for the pids controller (in v2, the same as `memory`)."""


@dataclass(frozen=True)
class Cgroup:
    """One sandbox's group: its memory cap, its process cap, and what it measured."""

    version: int
    """1 or 2."""
    memory: Path
    """Directory of the group in the memory hierarchy (v2: the group)."""
    pids: Path
    """Directory of the group in the pids hierarchy (v2: the same)."""

    def procs_files(self) -> list[str]:
        """The files a process writes its pid to, to enter the group."""
        return sorted({str(self.memory / "cgroup.procs"), str(self.pids / "cgroup.procs")})

    def peak(self) -> int | None:
        """The most memory the group has held at once, in bytes (None where the kernel does not say)."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int((self.memory / name).read_text())
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in the group."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            lines = (self.memory / name).read_text().splitlines()
        except OSError:
            return 0
        return next((int(line.split()[1]) for line in lines if line.startswith("oom_kill ")), 0)

    def holds(self, pid: int) -> bool:
        """Whether process `pid` is in this group, in every hierarchy."""
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False
        paths = {line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2}
        return all(any(p.endswith("/" + d.name) for p in paths) for d in (self.memory, self.pids))

    def remove(self) -> None:
        """Kill whatever is left in the group and remove it; a group that stays busy is left for later."""
        for directory in dict.fromkeys((self.memory, self.pids)):
            for _ in range(100):
                _kill_members(directory)
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def enter_command(group: Cgroup | None) -> list[str]:
    """A command prefix that raises the OOM score to 1000 and joins `group` (if any), then runs the rest.

    Both are inherited: every process of the sandbox starts in the group, as the OOM killer's first pick.
    """
    script = (
        "echo 1000 >/proc/self/oom_score_adj || exit 125\n"
        'while [ "$1" != -- ]; do echo $$ >"$1" || exit 125; shift; done\n'
        'shift; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "sh", *(group.procs_files() if group else []), "--"]


def _kill_members(directory: Path) -> None:
    try:
        pids = [int(n) for n in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def create(memory_bytes: int, processes: int) -> Cgroup:
    """A new group capped at `memory_bytes` (no swap beyond it) and `processes` tasks."""
    where = placement()
    name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    group = Cgroup(where.version, where.memory / name, where.pids / name)
    _remove_stale(where)
    try:
        for directory in dict.fromkeys((group.memory, group.pids)):
            directory.mkdir()
        if where.version == 1:
            _write(group.memory / "memory.limit_in_bytes", memory_bytes)
            _write(group.memory / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
        else:
            _write(group.memory / "memory.max", memory_bytes)
            _write(group.memory / "memory.swap.max", 0, optional=True)
        _write(group.pids / "pids.max", processes)
    except OSError as exc:
        group.remove()
        raise CgroupUnavailable(f"cannot set up {group.memory}: {exc.strerror or exc}") from exc
    return group


def _write(path: Path, value: int, optional: bool = False) -> None:
    if optional and not path.exists():  # swap accounting is a kernel option
        return
    path.write_text(str(value))


def _remove_stale(where: Placement) -> None:
    """Remove empty groups left by agents that died without cleaning up."""
    for parent in dict.fromkeys((where.memory, where.pids)):
        with contextlib.suppress(OSError):
            for entry in parent.iterdir():
                owner = entry.name[len(PREFIX) :].split("-")[0]
                if entry.name.startswith(PREFIX) and owner.isdigit() and not _alive(int(owner)):
                    with contextlib.suppress(OSError):
                        entry.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def placement() -> Placement:
    """Where this process can make sandbox groups; raises `CgroupUnavailable` saying why not. Cached."""
    mounts = _mounts()
    groups = _own_groups()
    reasons = []
    if "" in mounts and "" in groups:
        try:
            return _placement_v2(mounts[""] / groups[""].lstrip("/"))
        except CgroupUnavailable as exc:
            reasons.append(str(exc))
    if "memory" in mounts and "pids" in mounts and "memory" in groups and "pids" in groups:
        memory = mounts["memory"] / groups["memory"].lstrip("/")
        pids = mounts["pids"] / groups["pids"].lstrip("/")
        if os.access(memory, os.W_OK) and os.access(pids, os.W_OK):
            return Placement(1, memory, pids)
        reasons.append(f"cgroup v1: {memory} and {pids} are not writable (run as root)")
    raise CgroupUnavailable("; ".join(reasons) or "no cgroup hierarchy with the memory and pids controllers")


def _placement_v2(own: Path) -> Placement:
    wanted = {"memory", "pids"}
    try:
        offered = set((own / "cgroup.controllers").read_text().split())
        enabled = set((own / "cgroup.subtree_control").read_text().split())
    except OSError as exc:
        raise CgroupUnavailable(f"cgroup v2: cannot read {own}: {exc.strerror}") from exc
    if not wanted <= offered:
        raise CgroupUnavailable(f"cgroup v2: {own} does not offer {', '.join(sorted(wanted - offered))}")
    if not os.access(own, os.W_OK) or not os.access(own / "cgroup.subtree_control", os.W_OK):
        raise CgroupUnavailable(
            f"cgroup v2: {own} is not delegated to this user (systemd-run --user --scope -p Delegate=yes)"
        )
    if wanted <= enabled:
        return Placement(2, own, own)
    # A v2 group with processes cannot give its children controllers: move into a leaf first.
    others = [p for p in (own / "cgroup.procs").read_text().split() if int(p) != os.getpid()]
    if others:
        raise CgroupUnavailable(
            f"cgroup v2: {own} also holds other processes ({len(others)}); run the agent in a delegated "
            "scope of its own (systemd-run --user --scope -p Delegate=yes)"
        )
    try:
        leaf = own / "qwq-agent"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))
    except OSError as exc:
        raise CgroupUnavailable(f"cgroup v2: cannot enable memory and pids in {own}: {exc.strerror}") from exc
    return Placement(2, own, own)


def _mounts() -> dict[str, Path]:
    """Mount points of the cgroup hierarchies, by controller ("" for v2), from /proc/self/mountinfo."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if "-" not in fields:
                continue
            tail = fields[fields.index("-") + 1 :]
            if len(tail) < 3 or fields[3] != "/":  # a bind of a subtree: paths would not line up
                continue
            if tail[0] == "cgroup2":
                found.setdefault("", Path(fields[4]))
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    found.setdefault(option, Path(fields[4]))
    return found


def _own_groups() -> dict[str, str]:
    """This process's group path, by controller ("" for v2), from /proc/self/cgroup."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    return found
