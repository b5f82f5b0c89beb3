"""Helpers shared by the sandbox tests: the host's view of a sandbox's processes, and raw system calls.

Not a test module. The system-call numbers are the kernel's, for the two architectures CI and
laptops run; code sent into a sandbox gets them as text (`SYSCALLS` below is inlined).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tools.sandbox import Sandbox

_NUMBERS = {
    "x86_64": {
        "add_key": 248,
        "keyctl": 250,
        "request_key": 249,
        "io_uring_setup": 425,
        "perf_event_open": 298,
        "bpf": 321,
        "ptrace": 101,
        "userfaultfd": 323,
        "clone": 56,
        "clone3": 435,
        "kexec_load": 246,
        "init_module": 175,
        "mount": 165,
    },
    "aarch64": {
        "add_key": 217,
        "keyctl": 219,
        "request_key": 218,
        "io_uring_setup": 425,
        "perf_event_open": 241,
        "bpf": 280,
        "ptrace": 117,
        "userfaultfd": 282,
        "clone": 220,
        "clone3": 435,
        "kexec_load": 104,
        "init_module": 105,
        "mount": 40,
    },
}
SYSCALLS = _NUMBERS.get(os.uname().machine, {})
"""System-call numbers of this machine's architecture, by name (empty elsewhere: those tests skip)."""

KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING = -3, -4
KEYCTL_GET_KEYRING_ID, KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_REVOKE, KEYCTL_READ = 0, 1, 3, 11

# Code for inside a sandbox: `sys_call(name, *args)` returns (result, errno).
SYSCALL_PRELUDE = f"""
import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
_NUMBERS = {SYSCALLS!r}
def sys_call(name, *args):
    ctypes.set_errno(0)
    arguments = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = _libc.syscall(ctypes.c_long(_NUMBERS[name]), *arguments)
    return result, ctypes.get_errno()
"""

_libc = ctypes.CDLL(None, use_errno=True)


def host_call(name: str, *args: int | bytes | None) -> int:
    """A raw system call in the test process itself; raises OSError on failure."""
    arguments = [a if isinstance(a, bytes | None) else ctypes.c_long(a) for a in args]
    result = _libc.syscall(ctypes.c_long(SYSCALLS[name]), *arguments)
    if result == -1:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    return int(result)


def descendants(pid: int) -> list[int]:
    """Live processes below `pid` on the host, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and state != "Z":  # a zombie is dead, waiting to be reaped
            children.setdefault(int(ppid), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return sorted(set(found))


def settled(box: Sandbox, expected: int = 2) -> list[int]:
    """The sandbox's processes once a run is over: bubblewrap's init and the worker, nothing else.

    Counted below the worker's first process: the shell that joins the cgroup execs bubblewrap.
    """
    assert box._process is not None
    for _ in range(50):
        below = descendants(box._process.pid)
        if len(below) <= expected:
            break
        time.sleep(0.02)
    return below


def check_after(box: Sandbox) -> None:
    """After an attack: the sandbox still answers, and nothing the code started survives."""
    after = box.run("print(6 * 7)")
    assert after.ok and after.stdout == "42\n", after
    assert len(settled(box)) <= 2


class PeakSampler:
    """The highest value of `measure()` while the `with` block runs, sampled every 10 ms from the host."""

    def __init__(self, measure: Callable[[], int]) -> None:
        self.measure = measure
        self.peak = measure()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, self.measure())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()


def process_memory(box: Sandbox) -> int:
    """Anonymous and shared memory of the sandbox's processes now, in bytes, as the host sees it.

    Proportional shares (Pss): a page that forked processes share counts once in the sum.
    """
    if box._process is None:
        return 0
    total = 0
    for pid in descendants(box._process.pid):
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) << 10 for line in lines if line.startswith(("Pss_Anon:", "Pss_Shmem:")))
    return total


def system_shmem() -> int:
    """Shared memory in use on the whole host (tmpfs, SysV, memfd), in bytes."""
    lines = Path("/proc/meminfo").read_text().splitlines()
    return next(int(line.split()[1]) << 10 for line in lines if line.startswith("Shmem:"))
