"""The sandbox keeps runs apart and binds limits to the whole sandbox (issue 12), judged by host effect.

Keys stored by one run and read by another, namespaces that grant capabilities, kernel objects
(io_uring, perf events) that come into being, IPC objects that survive a run, memory the cgroup
measured, processes another sandbox could still start, files the scratch accepted, a worker that
survived a deep tree, the host name and kernel command line seen from inside.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_support import (
    KEY_SPEC_SESSION_KEYRING,
    KEYCTL_GET_KEYRING_ID,
    KEYCTL_JOIN_SESSION_KEYRING,
    KEYCTL_REVOKE,
    SYSCALL_PRELUDE,
    SYSCALLS,
    PeakSampler,
    check_after,
    descendants,
    host_call,
    process_memory,
    system_shmem,
)

from tools import sandbox_cgroup
from tools.sandbox import Limits, Sandbox

pytestmark = pytest.mark.skipif(not SYSCALLS, reason="system-call numbers known for x86-64 and arm64 only")


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    with Sandbox(strict=True) as box:
        yield box


@pytest.fixture()
def box(shared: Sandbox) -> Iterator[Sandbox]:
    yield shared
    check_after(shared)


def run_json(box: Sandbox, code: str, timeout: float = 10.0) -> dict:
    result = box.run(SYSCALL_PRELUDE + code, timeout)
    assert result.ok, result
    return json.loads(result.stdout.splitlines()[-1])


# Kernel keyrings.


def test_the_agents_session_keyring_is_out_of_reach() -> None:
    secret = "qwq-secret-" + uuid.uuid4().hex
    host_call("keyctl", KEYCTL_JOIN_SESSION_KEYRING, b"qwq-test-agent")  # a keyring the sandbox would inherit
    serial = host_call("add_key", b"user", b"qwq-agent-key", secret.encode(), len(secret), KEY_SPEC_SESSION_KEYRING)
    try:
        with Sandbox(strict=True, preload=()) as box:
            seen = run_json(
                box,
                f"""
import json
buffer = ctypes.create_string_buffer(256)
read = sys_call("keyctl", 11, {serial}, buffer, 256)
found = sys_call("request_key", b"user", b"qwq-agent-key", None, 0)
print(json.dumps({{"read": buffer.value.decode(errors="replace"), "found": found[0],
                   "listed": open("/proc/keys").read()}}))
""",
            )
    finally:
        host_call("keyctl", KEYCTL_REVOKE, serial)
    assert secret not in seen["read"] and seen["found"] == -1
    assert "qwq-agent-key" not in seen["listed"] and "qwq-test-agent" not in seen["listed"]


def test_a_key_stored_in_one_sandbox_is_not_read_in_another() -> None:
    secret = "qwq-shared-" + uuid.uuid4().hex
    store = f"""
import json
payload = {secret.encode()!r}
print(json.dumps([sys_call("add_key", b"user", b"qwq-planted", payload, len(payload), r) for r in (-3, -4, -5)]))
"""
    steal = """
import json
buffer = ctypes.create_string_buffer(256)
for ring in (-3, -4, -5):
    serial, _ = sys_call("keyctl", 10, ring, b"user", b"qwq-planted", 0)  # KEYCTL_SEARCH
    if serial > 0:
        sys_call("keyctl", 11, serial, buffer, 256)
found = sys_call("request_key", b"user", b"qwq-planted", None, 0)
print(json.dumps({"read": buffer.value.decode(errors="replace"), "found": found[0]}))
"""
    with Sandbox(strict=True, session=True, preload=()) as first, Sandbox(strict=True, preload=()) as second:
        stored = run_json(first, store)
        stolen = run_json(second, steal)
        again = run_json(first, steal)  # the next run of the same session
    assert all(result == -1 for result, _ in stored), stored
    assert secret not in stolen["read"] and stolen["found"] == -1
    assert secret not in again["read"] and again["found"] == -1


def test_each_run_gets_a_fresh_session_keyring(box: Sandbox) -> None:
    agent = host_call("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
    code = "import json\nprint(json.dumps(sys_call('keyctl', 0, -3, 0)))"
    rings = [run_json(box, code)[0] for _ in range(3)]
    assert all(ring > 0 for ring in rings) and len({*rings, agent}) == 4, (rings, agent)


# New user namespaces, and the capabilities and mounts they would grant.


def test_no_user_namespace_and_no_capability_is_gained(box: Sandbox) -> None:
    seen = run_json(
        box,
        """
import json
def state():
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
    return os.readlink("/proc/self/ns/user"), status["CapEff"].strip()
before = state()
unshared = _libc.unshare(0x10000000 | 0x20000) == 0  # CLONE_NEWUSER | CLONE_NEWNS
if unshared:  # become root of the new namespace, as `unshare -r` does
    for name, line in (("setgroups", "deny"), ("uid_map", "0 65534 1"), ("gid_map", "0 65534 1")):
        with open(f"/proc/self/{name}", "w") as map_file: map_file.write(line)
mounted = unshared and _libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0
wrote = 0
if mounted:  # a tmpfs of its own, past the scratch's 64 MiB (in files under the file size limit)
    for number in range(12):
        with open(f"/tmp/big{number}", "wb") as big: wrote += big.write(b"x" * (8 << 20))
child, _ = sys_call("clone", 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
if child == 0:
    os._exit(0)
if child > 0:
    os.waitpid(child, 0)
clone3 = sys_call("clone3", None, 0)
print(json.dumps({"before": before, "after": state(), "wrote": wrote, "child": child, "clone3": clone3}))
""",
    )
    assert seen["after"] == seen["before"] and seen["after"][1] == "0000000000000000", seen
    assert seen["wrote"] == 0 and seen["child"] == -1
    assert seen["clone3"] == [-1, 38]  # ENOSYS, so that glibc falls back to clone, which the filter can read


def test_io_uring_perf_bpf_ptrace_and_userfaultfd_make_nothing(box: Sandbox) -> None:
    seen = run_json(
        box,
        """
import json
def fds(): return set(os.listdir("/proc/self/fd"))
before = fds()
params = ctypes.create_string_buffer(120)
attr = ctypes.create_string_buffer(128)
attr[0:8] = (1).to_bytes(4, "little") + (128).to_bytes(4, "little")  # PERF_TYPE_SOFTWARE, size
attr[40:48] = (0b1100000).to_bytes(8, "little")  # exclude_kernel, exclude_hv
made = {
    "io_uring": sys_call("io_uring_setup", 8, params),
    "perf": sys_call("perf_event_open", attr, 0, -1, -1, 0),
    "bpf": sys_call("bpf", 0, ctypes.create_string_buffer(64), 64),  # BPF_MAP_CREATE
    "userfaultfd": sys_call("userfaultfd", 1),  # UFFD_USER_MODE_ONLY
}
child = os.fork()
if child == 0:
    os._exit(0 if sys_call("ptrace", 0, 0, 0, 0)[0] == 0 else 1)  # PTRACE_TRACEME
traced = os.waitpid(child, 0)[1] == 0
print(json.dumps({"made": made, "new_fds": sorted(fds() - before), "traced": traced}))
""",
    )
    assert seen["new_fds"] == [] and not seen["traced"], seen
    assert all(result == -1 for result, _ in seen["made"].values()), seen


def test_mounts_modules_and_kexec_stay_out_of_reach(box: Sandbox) -> None:
    seen = run_json(
        box,
        """
import json
mounts = open("/proc/self/mountinfo").read()
calls = [sys_call("mount", b"none", b"/tmp", b"tmpfs", 0, None), sys_call("init_module", None, 0, b""),
         sys_call("kexec_load", 0, 0, None, 0)]
print(json.dumps({"calls": calls, "same": open("/proc/self/mountinfo").read() == mounts}))
""",
    )
    assert seen["same"] and all(result == -1 for result, _ in seen["calls"]), seen


# IPC does not outlive a run.


def sysv_ids(kind: str) -> list[str]:
    lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
    return sorted(line.split()[1] for line in lines if line.strip())


def test_ipc_objects_are_gone_before_the_next_run(box: Sandbox) -> None:
    host = {kind: sysv_ids(kind) for kind in ("shm", "msg", "sem")}
    key = 0x51570000 + os.getpid() % 0xFFFF
    create = f"""
import json
shm = _libc.shmget({key}, 1 << 20, 0o1600)  # IPC_CREAT | 0600
_libc.shmat.restype = ctypes.c_void_p
address = _libc.shmat(shm, None, 0)
ctypes.memmove(address, b"left by run A", 13)
msg = _libc.msgget({key}, 0o1600)
sem = _libc.semget({key}, 1, 0o1600)
queue = _libc.mq_open(b"/qwq-left", os.O_CREAT | os.O_RDWR, 0o600, None)
print(json.dumps([shm, msg, sem, queue]))
"""
    find = f"""
import json
print(json.dumps([_libc.shmget({key}, 0, 0), _libc.msgget({key}, 0), _libc.semget({key}, 0, 0),
                  _libc.mq_open(b"/qwq-left", os.O_RDONLY)]))
"""
    made = run_json(box, create)
    assert all(number >= 0 for number in made), made
    assert run_json(box, find) == [-1, -1, -1, -1]
    assert {kind: sysv_ids(kind) for kind in ("shm", "msg", "sem")} == host


# Limits bind the whole sandbox: memory (shared memory and memfd included), processes.

SMALL = Limits(memory_bytes=256 << 20)
MEMFD_GIGABYTE = """
import os
files = [os.memfd_create("x") for _ in range(64)]  # 16 MiB each: the file size limit binds memfd too
for fd in files:
    os.write(fd, b"x" * (16 << 20))
"""


@pytest.fixture()
def small() -> Iterator[Sandbox]:
    with Sandbox(strict=True, limits=SMALL, preload=()) as box:
        yield box
        check_after(box)


def test_four_processes_share_one_memory_cap(small: Sandbox) -> None:
    code = """
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        chunks = []
        try:
            while len(chunks) < 20:  # 64 MiB at a time, up to 1.25 GiB a process: 5 GiB in all
                chunks.append(bytearray(1 << 26))
        except MemoryError:  # the address-space limit: about the cap, for each process
            pass
        time.sleep(30)
        os._exit(0)
    children.append(pid)
time.sleep(3)
for pid in children:
    os.kill(pid, 9)
"""
    assert small.cgroup is not None
    with PeakSampler(lambda: process_memory(small)) as mapped:
        result = small.run(code, 20)
    peak = small.cgroup.peak()
    assert result.error in (None, "memory", "killed"), result
    assert mapped.peak <= SMALL.memory_bytes + (16 << 20), mapped.peak
    assert peak is not None and peak <= SMALL.memory_bytes and small.cgroup.oom_kills() >= 1, peak


@pytest.mark.parametrize(
    "code",
    [
        # memfd: written, not mapped, so the address-space limit never sees it
        MEMFD_GIGABYTE,
        # SysV segments, touched, then orphaned: they outlive their processes
        """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
for _ in range(16):
    pid = os.fork()
    if pid == 0:
        address = libc.shmat(libc.shmget(0, 64 << 20, 0o1600), None, 0)
        ctypes.memset(address, 1, 64 << 20)
        os._exit(0)
    os.waitpid(pid, 0)
""",
    ],
    ids=["memfd", "sysv-shm"],
)
def test_shared_memory_counts_against_the_cap(small: Sandbox, code: str) -> None:
    before = system_shmem()
    with PeakSampler(system_shmem) as shared:
        result = small.run(code, 20)  # 1 GiB of shared memory, four times the cap
    assert result.error in ("memory", "killed") or result.ok, result
    assert shared.peak - before <= SMALL.memory_bytes + (32 << 20), (shared.peak - before) >> 20
    for _ in range(100):  # and nothing is left behind, once the kernel has freed a dead IPC namespace
        if system_shmem() - before <= 32 << 20:
            break
        time.sleep(0.05)
    assert system_shmem() - before <= 32 << 20


def test_an_oom_kill_reads_as_out_of_memory(small: Sandbox) -> None:
    result = small.run(MEMFD_GIGABYTE)
    assert result.error == "memory" and "256 MiB memory cap" in result.stderr, result


def test_a_process_hog_does_not_starve_another_sandbox() -> None:
    hog = """
import os, time
started = 0
while started < 500:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    started += 1
time.sleep(5)  # holding every process it could get, while the other sandbox works
"""
    work = """
import os
children = []
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    children.append(pid)
print(sum(os.waitpid(pid, 0)[1] == 0 for pid in children))
"""
    with Sandbox(strict=True, preload=()) as greedy, Sandbox(strict=True, preload=()) as other:
        assert greedy._process is not None and other.run("1").ok
        hogging = threading.Thread(target=greedy.run, args=(hog, 60), daemon=True)
        hogging.start()
        for _ in range(3000):  # until the hog holds (about) all the processes it may have
            if len(descendants(greedy._process.pid)) >= greedy.limits.processes - 8:
                break
            time.sleep(0.02)
        held = len(descendants(greedy._process.pid))
        done = other.run(work)
    assert greedy.limits.processes - 8 <= held < greedy.limits.processes, held  # capped in its own sandbox ...
    assert done.stdout == "20\n", done  # ... and the other sandbox still starts processes


def test_sandbox_processes_are_the_oom_killers_first_choice(box: Sandbox) -> None:
    assert box._process is not None
    inside = box.run("print(open('/proc/self/oom_score_adj').read())").stdout.split()
    pids = [box._process.pid, *descendants(box._process.pid)]
    host = [Path(f"/proc/{pid}/oom_score_adj").read_text().strip() for pid in pids]
    assert inside == ["1000"] and set(host) == {"1000"}, host
    assert Path("/proc/self/oom_score_adj").read_text().strip() != "1000"  # but not the agent


def test_the_cgroup_goes_with_the_sandbox() -> None:
    with Sandbox(strict=True, preload=()) as box:
        assert box.cgroup is not None and box.run("1").ok
        group = box.cgroup
        assert group.memory.is_dir() and group.pids.is_dir()
    assert not group.memory.exists() and not group.pids.exists()


# The scratch: inodes capped, a deep tree wiped without losing the run.


def test_two_million_empty_files_are_refused(box: Sandbox) -> None:
    code = """
import errno, os
made = 0
try:
    for made in range(2_000_000):
        open(f"f{made}", "w").close()
except OSError as exc:
    print(made, errno.errorcode[exc.errno])
"""
    result = box.run(code, 60)
    made, reason = result.stdout.split()
    assert int(made) <= box.limits.files and reason == "ENOSPC", result


def test_a_deep_tree_is_wiped_and_the_finished_run_kept(box: Sandbox) -> None:
    assert box._process is not None
    worker = box._process.pid
    code = """
import os
for level in range(1100):
    os.mkdir("d" * 8)
    os.chdir("d" * 8)
    if level % 100 == 99:
        open("note", "w").write("x")
os.chdir("/tmp/" + "d" * 8)
os.chmod(".", 0)
print("made")
"""
    result = box.run(code, 30)
    assert result.ok and result.stdout == "made\n", result
    later = box.run("import os; print([name for name in os.listdir('/tmp') if not name.startswith('.wipe')])")
    installed = sorted({Path(p).parts[2] for p in (sys.prefix, sys.base_prefix) if Path(p).parts[1:2] == ("tmp",)})
    assert later.ok and later.stdout == f"{installed}\n" and ".wipe" not in later.stdout, later
    assert box._process is not None and box._process.pid == worker  # the worker survived the wipe


# What the code can learn of the host.


def test_the_host_name_is_not_the_hosts(box: Sandbox) -> None:
    inside = box.run("import socket; print(socket.gethostname()); print(open('/proc/sys/kernel/hostname').read())")
    assert socket.gethostname() not in inside.stdout.split(), inside


def test_the_kernel_command_line_is_masked(box: Sandbox) -> None:
    host = Path("/proc/cmdline").read_text()
    inside = box.run("print(repr(open('/proc/cmdline').read()))")
    assert host.strip() and inside.stdout == "''\n", inside


# Cgroup v2 placement, on a directory laid out as a delegated v2 group would be.


def test_cgroup_v2_moves_the_agent_into_a_leaf(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    (tmp_path / "cgroup.procs").write_text(f"{os.getpid()}\n")
    where = sandbox_cgroup._placement_v2(tmp_path)
    assert where == sandbox_cgroup.Placement(2, tmp_path, tmp_path)
    assert (tmp_path / "qwq-agent" / "cgroup.procs").read_text() == str(os.getpid())
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids"
    (tmp_path / "cgroup.procs").write_text(f"{os.getpid()}\n1\n")  # a shell shares the group: leave it be
    (tmp_path / "cgroup.subtree_control").write_text("")
    with pytest.raises(sandbox_cgroup.CgroupUnavailable, match="other processes"):
        sandbox_cgroup._placement_v2(tmp_path)


def test_the_system_call_numbers_are_this_kernels() -> None:
    # A wrong table would make the tests above vacuous: the host's own keyctl must answer.
    assert host_call("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) > 0
