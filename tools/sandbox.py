"""Run model-written Python in an isolated, resource-limited sandbox, fast enough for dozens of cells.

Isolation comes in layers (`tools/sandbox_layers.py` builds them and says what each stops), each
probed once on this machine by a check run inside a real sandbox (`probe()`):

- a separate process with an empty environment (no secret of the agent leaks) and stdin closed;
- bubblewrap namespaces: a filesystem of only /usr and the Python installation, read-only, plus an
  empty size- and inode-capped tmpfs as scratch (the home directory, the project and /etc are
  absent; /proc/cmdline reads empty); a network namespace with nothing but loopback; PID, IPC and
  UTS namespaces (its own host name), so the code sees and signals only its own processes;
- an unprivileged uid (65534) with no capabilities; as root, `setpriv` drops to it;
- a seccomp filter (`tools/sandbox_seccomp.py`) against keyrings, new user namespaces, io_uring,
  bpf, perf events, ptrace, mounts, modules and kexec; a fresh session keyring for each run;
- a cgroup per sandbox (`tools/sandbox_cgroup.py`) capping the memory of all its processes
  together (shared memory, memfd and scratch files included) and their number; the sandbox's
  processes are the OOM killer's first choice (oom_score_adj 1000);
- per-run limits: address space, file size, open files, CPU time; a wall-clock deadline after
  which every process of the run is killed; output read through a byte cap; between runs the
  scratch is wiped and IPC objects are removed;
- results cross the boundary as JSON lines, never pickle.

Speed: a warm worker (`tools/sandbox_worker.py`) imports numpy and sympy once and forks a fresh
child for each cell, which costs milliseconds. With `Sandbox(session=True)` variables persist
between cells, as in a notebook.

Strict mode (`strict=True`, or QWQ_SANDBOX_STRICT=1 in the environment) refuses to run when a
layer is missing; otherwise the sandbox warns once, saying what the missing layer leaves open.

It does not defend against kernel exploits through the system calls it allows, or decide whether
code may run at all: approval is the graph's business.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from tools import sandbox_cgroup, sandbox_seccomp
from tools.registry import Tool, ToolError, tool
from tools.sandbox_layers import Layers, admit, command, environment, private_paths

__all__ = ["Execution", "Layers", "Limits", "Sandbox", "execute", "observe", "probe", "python", "run_python"]

STRICT_ENV = "QWQ_SANDBOX_STRICT"
"""Set to 1 to make every sandbox fail closed when an isolation layer is missing."""
MAX_TIMEOUT = 120.0
PRELOAD = ("numpy", "sympy")
_WORKER = Path(__file__).with_name("sandbox_worker.py").read_text()
_STARTUP = 30.0  # seconds for a cold worker to import its modules
_GRACE = 2.0  # the host's deadline beyond the worker's own, in case the worker was stopped or killed

ErrorKind = Literal["timeout", "memory", "output_limit", "killed", "exception"]
_ERRORS: dict[str, ErrorKind] = {kind: kind for kind in get_args(ErrorKind)}
_RESTARTED = "[the session was restarted: variables from earlier cells are gone]"
_CAPPED = "[the sandbox's processes together reached its {:g} MiB memory cap]"


@dataclass(frozen=True)
class Limits:
    """Resource limits for each run."""

    memory_bytes: int = 1 << 30
    """Memory of the whole sandbox, every process, shared memory and scratch file together (its cgroup);
    also the address space of each process (RLIMIT_AS)."""
    file_bytes: int = 16 << 20
    """Largest file a run may write (RLIMIT_FSIZE)."""
    disk_bytes: int = 64 << 20
    """Size of the scratch tmpfs, all files together."""
    files: int = 16384
    """Files and directories in the scratch, all together (the tmpfs's inodes)."""
    open_files: int = 128
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    processes: int = 64
    """Processes and threads of the whole sandbox (its cgroup; without one, RLIMIT_NPROC of its uid)."""
    output_bytes: int = 64_000
    """Bytes kept of stdout and of stderr each; a run printing more is stopped."""


@dataclass(frozen=True)
class Execution:
    """What one run of code produced."""

    stdout: str
    """Standard output, at most `Limits.output_bytes` of it."""
    stderr: str
    """Standard error: the traceback, warnings, and notes on why the run stopped."""
    ok: bool
    """The code ran to its end without an uncaught exception."""
    error: ErrorKind | None
    """Why not: the code raised (`exception`; `memory` for MemoryError or the sandbox's memory cap),
    or the sandbox stopped it."""
    duration: float
    """Seconds of wall time, as seen by the caller, including any start of a worker."""
    truncated: bool
    """Output past the byte cap was dropped."""


# Runs as a cell of a trial sandbox to see the layers from inside; the host fills in the paths.
_CHECK = """
import ctypes, errno, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
uid = os.getuid()
maps = [[int(n) for n in line.split()] for line in open("/proc/self/uid_map")]
outer = next((lower + uid - inner for inner, lower, count in maps if inner <= uid < inner + count), 0)
devices = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
keyctl = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
# keyctl(READ, session) and unshare(CLONE_NEWUSER) both succeed unless the filter denies them.
keys = keyctl is not None and libc.syscall(ctypes.c_long(keyctl), ctypes.c_long(11), ctypes.c_long(-3), None, 0) == -1
keys = keys and ctypes.get_errno() == errno.EPERM
userns = libc.unshare(0x10000000) == -1 and ctypes.get_errno() == errno.EPERM
filtered = "Seccomp:\t2" in open("/proc/self/status").read()
print(json.dumps({"visible": [p for p in PATHS if os.path.exists(p)], "devices": devices,
                  "pids": len([p for p in os.listdir("/proc") if p.isdigit()]), "uid": outer,
                  "root_writable": os.access("/", os.W_OK), "seccomp": filtered and keys and userns,
                  "hostname": socket.gethostname(), "cmdline": len(open("/proc/cmdline", "rb").read()),
                  "files": os.statvfs(".").f_files, "oom": int(open("/proc/self/oom_score_adj").read())}))
"""


@functools.cache
def probe() -> Layers:
    """Run a check inside a trial sandbox and report which layers it got; cached for the life of the process."""
    bwrap = shutil.which("bwrap")
    reasons = [] if bwrap else ["bubblewrap (bwrap) is not installed"]
    try:
        program = sandbox_seccomp.program()
    except sandbox_seccomp.SeccompUnavailable as exc:
        program, reasons = b"", [*reasons, str(exc)]
    try:
        cgroup = sandbox_cgroup.placement().version
    except sandbox_cgroup.CgroupUnavailable as exc:
        cgroup, reasons = 0, [*reasons, str(exc)]
    limits = Limits()
    code = _CHECK.replace("PATHS", repr(private_paths()))
    for candidate in ([bwrap] if bwrap else []) + [None]:
        trial = Layers(candidate, True, True, True, True, syscalls=bool(program), cgroup=cgroup, inodes=True)
        try:
            with Sandbox(layers=trial, limits=limits, preload=(), _probing=True) as box:
                result = box.run(code, timeout=_STARTUP)
                seen = json.loads(result.stdout)
                held = box.cgroup is not None and box._process is not None and box.cgroup.holds(box._process.pid)
        except (ToolError, ValueError) as exc:
            said = result.stderr.strip()[-500:] if isinstance(exc, ValueError) else exc
            reasons.append(f"{candidate or sys.executable} failed: {said}")
            continue
        inside = bool(candidate)
        return Layers(
            bwrap=candidate,
            filesystem=inside and not seen["visible"] and not seen["root_writable"],
            network=seen["devices"] == ["lo"],
            # bubblewrap's init, the worker, this cell; all of them the OOM killer's first choice
            processes=inside and seen["pids"] <= 3 and seen["oom"] == 1000,
            # A user namespace of ours maps to our own uid at most; as root, the map must say so.
            unprivileged=os.geteuid() != 0 or seen["uid"] != 0,
            detail="; ".join(reasons),
            syscalls=seen["seccomp"],
            cgroup=cgroup if held else 0,
            inodes=inside and seen["files"] <= limits.files,
            identity=inside and seen["hostname"] != socket.gethostname() and seen["cmdline"] == 0,
        )
    return Layers(None, False, False, False, os.geteuid() != 0, "; ".join(reasons))


class Sandbox:
    """A warm, isolated Python worker; with `session=True`, variables persist between runs.

    The worker starts in the background at construction, so that the first run is usually warm.
    Use it as a context manager, or call `close`; it also dies with the process. `layers` replaces
    the probe's findings (the probe itself passes what it is trying).
    """

    def __init__(
        self,
        *,
        session: bool = False,
        strict: bool | None = None,
        limits: Limits = Limits(),
        preload: tuple[str, ...] = PRELOAD,
        layers: Layers | None = None,
        _probing: bool = False,
    ) -> None:
        self.session = session
        self.limits = limits
        self.preload = preload
        self.strict = os.environ.get(STRICT_ENV) == "1" if strict is None else strict
        self.layers = probe() if layers is None else layers
        if not _probing:
            admit(self.layers, self.strict)
        self._probing = _probing
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self.cgroup: sandbox_cgroup.Cgroup | None = None
        """The worker's cgroup, while it runs (None without the cgroup layer)."""
        self._ready = False
        self._buffer = b""
        self._finalizer: weakref.finalize | None = None
        self._start()

    def run(self, code: str, timeout: float = 10.0) -> Execution:
        """Run `code`, stopping it after `timeout` seconds (clamped to 0.1 .. MAX_TIMEOUT)."""
        timeout = min(max(timeout, 0.1), MAX_TIMEOUT) if math.isfinite(timeout) else MAX_TIMEOUT
        with self._lock:
            started = time.monotonic()
            if self._process is None or self._process.poll() is not None:
                self._stop()
                self._start()
            if not self._ready:
                self._await_ready(started + _STARTUP)
            cgroup = self.cgroup
            killed_before = cgroup.oom_kills() if cgroup else 0
            reply = self._ask({"code": code, "timeout": timeout}, time.monotonic() + timeout + _GRACE)
            lost = reply is None  # the worker was killed, stopped or garbled: start afresh
            if reply is None:
                dead = self._process is not None and self._process.poll() is not None
                reply = {"error": "killed" if dead else "timeout", "stderr": _RESTARTED * self.session}
            if reply.get("error") == "killed" and cgroup and cgroup.oom_kills() > killed_before:
                reply["error"] = "memory"
                reply["stderr"] = f"{reply.get('stderr', '')}\n{_CAPPED.format(self.limits.memory_bytes / 2**20)}"
            if lost:
                self._stop()
                self._start()
            duration = time.monotonic() - started
        error = None if reply.get("error") is None else _ERRORS.get(str(reply["error"]), "killed")
        return Execution(
            stdout=str(reply.get("stdout", "")),
            stderr=str(reply.get("stderr", "")),
            ok=error is None,
            error=error,
            duration=duration,
            truncated=bool(reply.get("truncated", False)),
        )

    def as_tool(self) -> Tool:
        """This sandbox as the `python` tool, e.g. one session per episode."""

        def cell(code: Code, timeout: float = 10.0) -> str:
            return observe(self.run(code, timeout), timeout)

        cell.__doc__ = run_python.__doc__
        if self.session and cell.__doc__:
            cell.__doc__ = cell.__doc__.replace(_FRESH, _KEPT)
        return tool(name="python", runs_code=True)(cell)

    def close(self) -> None:
        """Kill the worker and everything in the sandbox."""
        with self._lock:
            self._stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        layers, limits = self.layers, self.limits
        bwrap = layers.bwrap
        self.cgroup = None
        if layers.cgroup:
            try:
                self.cgroup = sandbox_cgroup.create(limits.memory_bytes, limits.processes)
            except sandbox_cgroup.CgroupUnavailable as exc:
                raise ToolError(f"the Python sandbox did not start: {exc}") from exc
        scratch = "/tmp" if bwrap else tempfile.mkdtemp(prefix="qwq-sandbox-")
        rlimits = {"AS": limits.memory_bytes, "FSIZE": limits.file_bytes, "NOFILE": limits.open_files, "CORE": 0}
        if self.cgroup is None:  # RLIMIT_NPROC counts every process of uid 65534: all sandboxes share it
            rlimits["NPROC"] = limits.processes
        config = {
            "session": self.session,
            "preload": list(self.preload),
            "scratch": scratch,
            "pidns": layers.processes,
            "output_bytes": limits.output_bytes,
            "limits": rlimits,
            "seccomp": sandbox_seccomp.program().hex() if layers.syscalls else "",
        }
        enter = sandbox_cgroup.enter_command(self.cgroup)
        try:
            self._process = subprocess.Popen(
                command(
                    bwrap, ["-c", _WORKER, json.dumps(config)], limits.disk_bytes, limits.files, enter, layers.syscalls
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment(scratch),
                cwd="/" if bwrap else scratch,
                start_new_session=True,
            )
        except OSError as exc:
            if self.cgroup is not None:
                self.cgroup.remove()
            raise ToolError(f"the Python sandbox did not start: {exc}") from exc
        self._ready = False
        self._buffer = b""
        self._finalizer = weakref.finalize(self, _kill, self._process, None if bwrap else scratch, self.cgroup)

    def _await_ready(self, deadline: float) -> None:
        """Wait for the worker's first line, and check that it got every layer the probe promised."""
        ready = self._receive(deadline)
        if ready is None:
            detail = self._stderr()
            self._stop()
            raise ToolError(f"the Python sandbox did not start: {detail}")
        assert self._process is not None
        broken = []
        if self.layers.syscalls and not ready.get("seccomp"):
            broken.append("the kernel refused the seccomp filter")
        if self.layers.inodes and int(ready.get("files", 0)) > self.limits.files:
            broken.append("the scratch's inodes are not capped")
        if self.cgroup is not None and not self.cgroup.holds(self._process.pid):
            broken.append(f"the worker is not in its cgroup {self.cgroup.memory}")
        if broken and not self._probing:
            self._stop()
            raise ToolError("the Python sandbox did not start: " + "; ".join(broken))
        self._ready = True

    def _stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._process = None
        self.cgroup = None

    def _ask(self, request: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
        except OSError:
            return None
        return self._receive(deadline)

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        """The worker's next JSON line, or None at the deadline, at its death, or past a size cap."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        cap = 16 * self.limits.output_bytes + 65536  # JSON escapes may grow each byte sixfold
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._buffer) > cap:
                return None
            if select.select([fd], [], [], remaining)[0]:
                data = os.read(fd, 1 << 16)
                if not data:
                    return None
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except ValueError:
            return None
        return reply if isinstance(reply, dict) else None

    def _stderr(self) -> str:
        """What a worker that failed to start said, briefly."""
        process = self._process
        if process is None or process.stderr is None:
            return "no worker"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        text = process.stderr.read(4000).decode(errors="replace").strip()
        return text[-1000:] or f"exit status {process.wait()}"


def _kill(process: subprocess.Popen[bytes], scratch: str | None, cgroup: sandbox_cgroup.Cgroup | None) -> None:
    """Kill a worker's process group; bubblewrap's init then takes the whole namespace down with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    if cgroup is not None:  # also kills anything that left the process group
        cgroup.remove()


_shared: dict[bool, Sandbox] = {}
_shared_lock = threading.Lock()


def execute(code: str, timeout: float = 10.0, *, strict: bool | None = None) -> Execution:
    """Run `code` once, with no session, in a warm sandbox shared by this process.

    Raises `ToolError` only when the sandbox cannot run at all (strict mode and a layer missing, or
    a worker that does not start); whatever the code does is reported in the `Execution`.
    """
    strict = os.environ.get(STRICT_ENV) == "1" if strict is None else strict
    with _shared_lock:
        sandbox = _shared.get(strict) or _shared.setdefault(strict, Sandbox(strict=strict))
    return sandbox.run(code, timeout)


def benchmark(runs: int = 20) -> dict[str, float]:
    """Seconds for `qwq-agent bench`: cold `python -c "import sympy"`, a warm cell (median), a runaway loop.

    The issue's targets: warm <= 15 ms and <= 0.05x cold; the loop (timeout 1 s) stopped within 1.2 s.
    """
    snippet = "import sympy; print(sympy.Integer(2) ** 10)"
    cold = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", snippet], capture_output=True, timeout=60)
        cold.append(time.monotonic() - started)
    with Sandbox() as box:
        box.run("1")
        warm = statistics.median(box.run(snippet).duration for _ in range(runs))
        loop = box.run("while True: pass", 1.0).duration
    cold_median = statistics.median(cold)
    return {"cold": cold_median, "warm": warm, "warm_over_cold": warm / cold_median, "loop_1s": loop}


def _clip(text: str, limit: int = 4000) -> str:
    """`text` with its middle cut out when longer than `limit`: beginnings and tracebacks' ends matter."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[-limit // 4 :]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters cut ...]\n{tail}"


def observe(result: Execution, timeout: float) -> str:
    """The observation the model reads; raises `ToolError` with the same text when the code raised
    (the call failed: the view shows it as a failure, the model reads the traceback) or a limit
    stopped the run."""
    parts = [_clip(part.rstrip("\n")) for part in (result.stdout, result.stderr) if part.strip()]
    notes = {
        "timeout": f"[stopped: the code ran longer than its {timeout:g} s limit]",
        "memory": "[stopped: the code ran out of memory]",
        "output_limit": "[stopped: the code printed more than the sandbox keeps; the rest was dropped]",
        "killed": "[stopped: the sandbox process was killed]",
    }
    if result.error in notes:
        parts.append(notes[result.error])
        raise ToolError("\n".join(parts))
    if result.error == "exception":
        raise ToolError("\n".join(parts) or "the code raised an exception")
    return "\n".join(parts) or "[no output: print() the values you want to see]"


_FRESH = "Each call starts afresh: no variables or files survive from earlier calls."
_KEPT = "Variables and files persist between calls, as in a notebook."


CODE_MAX_CHARS = 3000
"""Longest cell a model may write in a call (the grammar's bound): a real program, many times an
expression's room, still cut before it fills a small model's context."""
Code = Annotated[str, Field(max_length=CODE_MAX_CHARS)]


def run_python(code: Code, timeout: float = 10.0) -> str:
    """Run Python code in an isolated sandbox and return what it printed (an error: its traceback).

    Each call starts afresh: no variables or files survive from earlier calls. numpy and sympy are
    installed; there is no network and no access to the user's files. The value of a final bare
    expression is printed, as in a notebook. For plain arithmetic use the calculator: in Python
    `^` is bitwise XOR (`2^16` is 18), so write powers as `**`.

    Args:
        code: A complete Python program; print() the results you need.
        timeout: Seconds before the run is stopped (at most 120).
    """
    return observe(execute(code, timeout), timeout)


python = tool(name="python", runs_code=True)(run_python)
