"""The warm loop inside the sandbox: preload numpy and sympy once, then run each cell in a forked child.

`tools/sandbox.py` starts it as `python -I -B -c <this source> <config JSON>`, already inside the
isolation layers and as an unprivileged user. It reads one JSON request per line on stdin
(`{"code", "timeout"}`) and answers one JSON line on stdout (`stdout`, `stderr`, `error`,
`truncated`). Forking from a process that has already imported numpy and sympy makes a cell cost
milliseconds instead of the ~0.3 s of a fresh interpreter.

Before it preloads a module it loads the host's seccomp filter (compiled BPF, from the config) and
joins a fresh anonymous session keyring; each run joins another, so no run holds a keyring that
another run, or the agent, has held.

Between runs it restores a clean state: every process the code started is killed, the scratch
directory is wiped (without recursion: the tree can be deeper than any stack), the SysV IPC
objects and POSIX message queues of the sandbox's IPC namespace are removed, and the next cell
forks from this process's untouched memory. With `session` on, one child (the runner) lives on
between cells and keeps its variables, as a notebook kernel does; it is replaced, losing them,
after a timeout, a kill or an output flood (its IPC objects go with it).

It is not a security boundary: the code runs as the same user, so it can kill this process. The
host treats that as a failed run, keeps its own deadline, and starts a fresh sandbox.
Standard library only, and nothing imported from the project, which is invisible in here.
"""

import ast
import builtins
import contextlib
import ctypes
import io
import json
import linecache
import os
import resource
import select
import signal
import sys
import time
import traceback

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
SECCOMP_MODE_FILTER, KEYCTL_JOIN_SESSION_KEYRING, IPC_RMID = 2, 1, 0
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
_libc = ctypes.CDLL(None, use_errno=True)


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main() -> None:
    config = json.loads(sys.argv[1])
    # Die with the host even without bubblewrap's --die-with-parent.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _join_new_keyring()
    filtered = _load_filter(bytes.fromhex(config["seccomp"])) if config["seccomp"] else False
    # The host channel moves off fds 0 and 1, so that nothing printed by accident can garble it.
    host_in, host_out = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    preloaded = [name for name in config["preload"] if _try_import(name)]
    # Not dumpable: a cell running as the same uid cannot ptrace this process or open its /proc files.
    _libc.prctl(PR_SET_DUMPABLE, 0)
    worker = Worker(config, (host_in, host_out))
    files = os.statvfs(config["scratch"]).f_files
    worker.send({"ready": True, "preloaded": preloaded, "seccomp": filtered, "files": files})
    for line in host_in:
        request = json.loads(line)
        worker.send(worker.run(request["code"], float(request["timeout"])))


def _load_filter(program: bytes) -> bool:
    """Load the seccomp filter into this process, and so into every cell; False if the kernel refused it."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _Program(len(program) // 8, ctypes.addressof(buffer))
    ulong = ctypes.c_ulong
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, ulong(1), ulong(0), ulong(0), ulong(0)) != 0:
        return False
    return _libc.prctl(PR_SET_SECCOMP, ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog), ulong(0), ulong(0)) == 0


def _join_new_keyring() -> None:
    """Replace the inherited session keyring (the agent's, or the previous run's) with a new, empty one."""
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is not None:  # another architecture keeps the inherited keyring; the filter still guards it
        _libc.syscall(ctypes.c_long(number), ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), ctypes.c_void_p(None))


def _try_import(name: str) -> bool:
    try:
        __import__(name)
    except Exception:
        return False
    return True


class Worker:
    def __init__(self, config: dict, host: tuple) -> None:
        self.config = config
        self.host = host
        self.scratch = config["scratch"]
        # kill(-1) is only safe inside our own PID namespace, where we are the second process.
        self.pidns = config["pidns"] and os.getpid() <= 3
        self.runner: int | None = None
        self.pipes: dict[str, int] = {}

    def send(self, message: dict) -> None:
        self.host[1].write(json.dumps(message).encode() + b"\n")
        self.host[1].flush()

    def run(self, code: str, timeout: float) -> dict:
        cap = self.config["output_bytes"]
        if self.runner is None:
            self.start_runner()
        os.write(self.pipes["control"], json.dumps({"code": code, "timeout": timeout}).encode() + b"\n")
        deadline = time.monotonic() + timeout
        streams = {self.pipes["stdout"]: bytearray(), self.pipes["stderr"]: bytearray()}
        status, error, truncated = b"", None, False
        open_fds = [*streams, self.pipes["status"]]
        while not status.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = "timeout"
                break
            ready, _, _ = select.select(open_fds, [], [], remaining)
            for fd in ready:
                data = os.read(fd, 65536)
                if fd == self.pipes["status"]:
                    status += data
                    if not data:  # the runner died without reporting
                        status, error = b"\n", "killed"
                elif not data:
                    open_fds.remove(fd)
                else:
                    streams[fd] += data
                    truncated = truncated or len(streams[fd]) > cap
            if truncated:
                error = "output_limit"
                break
        for fd, buffer in streams.items():  # what was written before the status line or the kill
            buffer += _drain(fd, cap + 1 - len(buffer))
            truncated = truncated or len(buffer) > cap
        if error is None:
            error = "output_limit" if truncated else _reported(status)
        stdout, stderr = (bytes(streams[self.pipes[name]][:cap]) for name in ("stdout", "stderr"))
        note = ""
        if error in ("timeout", "output_limit", "killed") or not self.config["session"]:
            note = self.stop_runner(error)
        else:
            assert self.runner is not None
            self.sweep(self.runner, keep_runner=True)
        return {
            "stdout": stdout.decode(errors="replace"),
            "stderr": stderr.decode(errors="replace") + note,
            "error": error,
            "truncated": truncated,
        }

    def start_runner(self) -> None:
        ends = {name: os.pipe() for name in ("control", "status", "stdout", "stderr")}
        pid = os.fork()
        if pid == 0:
            try:
                runner(self, ends["control"][0], ends["status"][1], ends["stdout"][1], ends["stderr"][1])
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(70)
        self.runner = pid
        self.pipes = {
            "control": ends["control"][1],
            "status": ends["status"][0],
            "stdout": ends["stdout"][0],
            "stderr": ends["stderr"][0],
        }
        for name, (read, write) in ends.items():
            os.close(write if name != "control" else read)
        for name in ("stdout", "stderr", "status"):
            os.set_blocking(self.pipes[name], False)

    def stop_runner(self, error: str | None) -> str:
        """Kill the runner and everything the code started; a note on what happened, for stderr."""
        pid, self.runner = self.runner, None
        assert pid is not None
        self.sweep(pid, keep_runner=False)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        for fd in self.pipes.values():
            os.close(fd)
        self.pipes = {}
        _wipe(self.scratch)
        _remove_ipc()
        note = ""
        if error == "killed" and os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            note = f"\n[the process was killed by {signal.Signals(number).name}]"
            if number == signal.SIGXCPU:
                note = "\n[the process ran out of CPU time]"
        if self.config["session"] and error is not None:
            note += "\n[the session was restarted: variables from earlier cells are gone]"
        return note

    def sweep(self, runner: int, keep_runner: bool) -> None:
        """Kill every process the code started, and the runner too unless `keep_runner`."""
        if self.pidns and not keep_runner:
            os.kill(-1, signal.SIGKILL)  # everything in the namespace we may signal, except ourselves
            return
        if self.pidns:
            os.kill(-1, signal.SIGSTOP)  # freeze first, so that nothing forks while we look
        for name in os.listdir("/proc"):
            pid = int(name) if name.isdigit() else 0
            if pid in (0, 1, os.getpid()) or (keep_runner and pid == runner):
                continue
            # Without a PID namespace /proc is the host's: only the runner's process group is ours.
            if self.pidns or _process_group(pid) == runner:
                _kill(pid)
        if keep_runner:
            os.kill(runner, signal.SIGCONT)


def runner(worker: Worker, control: int, status: int, stdout: int, stderr: int) -> None:
    """Body of the forked child: limits, fresh standard streams, then cells until the control pipe closes."""
    config = worker.config
    os.setsid()
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _join_new_keyring()
    _libc.prctl(PR_SET_DUMPABLE, 1)
    for host_file in worker.host:
        host_file.close()
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    keep = {0, 1, 2, control, status}
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd not in keep:
            with contextlib.suppress(OSError):  # the directory listing's own descriptor
                os.close(fd)
    for name, value in config["limits"].items():  # NPROC only without a cgroup: it counts every sandbox's
        _limit(getattr(resource, "RLIMIT_" + name), value, hard=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file size limit fails instead
    os.chdir(worker.scratch)
    sys.path.insert(0, worker.scratch)
    # Line-buffered, so that what a run printed before its deadline is not lost with it.
    for stream in (sys.stdout, sys.stderr):
        assert isinstance(stream, io.TextIOWrapper)
        stream.reconfigure(line_buffering=True, errors="backslashreplace")
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    with os.fdopen(control, "rb") as cells:
        for number, line in enumerate(cells):
            cell = json.loads(line)
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu = int(used.ru_utime + used.ru_stime + cell["timeout"]) + 2
            # Soft limit only: a session's next cell must be able to raise it again.
            _limit(resource.RLIMIT_CPU, cpu, hard=False)
            error = run_cell(cell["code"], namespace, f"<cell {number}>")
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(status, json.dumps({"error": error}).encode() + b"\n")
    os._exit(0)


def run_cell(code: str, namespace: dict, name: str) -> str | None:
    """Run `code` as a notebook cell (the last expression's value is printed); the error kind or None."""
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    try:
        tree = ast.parse(code, name)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, name, "exec"), namespace)
        if isinstance(last, ast.Expr):
            value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
            if value is not None:
                print(repr(value))
    except SystemExit as exc:
        if exc.code in (None, 0):
            return None
        print(f"SystemExit: {exc.code}", file=sys.stderr)
        return "exception"
    except BaseException as exc:
        tb = None if isinstance(exc, SyntaxError) else exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == run_cell.__code__.co_filename:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        return "memory" if isinstance(exc, MemoryError) else "exception"
    return None


def _limit(kind: int, value: int, hard: bool) -> None:
    ceiling = resource.getrlimit(kind)[1]
    if ceiling != resource.RLIM_INFINITY:
        value = min(value, ceiling)
    resource.setrlimit(kind, (value, value if hard else ceiling))


def _reported(status: bytes) -> str | None:
    """The error kind the runner reported; a runner that garbles its status line counts as killed."""
    try:
        error = json.loads(status.split(b"\n")[0])["error"]
    except (ValueError, KeyError, TypeError):
        return "killed"
    return error if error in (None, "exception", "memory") else "killed"


def _process_group(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return 0


def _drain(fd: int, limit: int) -> bytes:
    data = b""
    while len(data) < limit:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _installation() -> tuple[set[str], set[str]]:
    """The Python installation's directories, and all their parents."""
    kept = {os.path.normpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    parents = {os.path.dirname(p) for p in kept}
    while not {os.path.dirname(p) for p in parents} <= parents:
        parents |= {os.path.dirname(p) for p in parents}
    return kept, parents


_KEPT = _installation()


def _wipe(scratch: str) -> None:
    """Empty `scratch`, even of files the code made unreadable, without recursion or long paths.

    Each pass removes the files of every top-level directory and moves its subdirectories up to
    the top, so a tree of any depth goes in as many passes, every path two levels deep at most.
    The read-only Python installation (bound here when it lives under /tmp) and its parents stay.
    """
    kept, parents = _KEPT
    roots = [scratch, *sorted(p for p in parents if p.startswith(scratch + "/"))]
    moved = 0
    while True:  # each pass removes or lifts at least one entry, or it is the last
        removed = 0
        for root in roots:
            for entry in _entries(root):
                if entry.path in kept or entry.path in parents:
                    continue
                if not entry.is_dir(follow_symlinks=False):
                    removed += _remove(os.unlink, entry.path)
                    continue
                with contextlib.suppress(OSError):
                    os.chmod(entry.path, 0o700)
                for child in _entries(entry.path):
                    if child.is_dir(follow_symlinks=False):
                        moved += 1
                        with contextlib.suppress(OSError):
                            os.chmod(child.path, 0o700)  # moving a directory rewrites its "..": needs write
                        removed += _remove(os.rename, child.path, os.path.join(scratch, f".wipe-{moved}"))
                    else:
                        removed += _remove(os.unlink, child.path)
                removed += _remove(os.rmdir, entry.path)
        if not removed:
            return


def _entries(directory: str) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError:
        return []


def _remove(remove, *paths: str) -> int:
    try:
        remove(*paths)
    except OSError:
        return 0
    return 1


_IPC_INFO = {"shm": (14, 0), "msg": (12, 0), "sem": (19, 7)}  # SHM/MSG/SEM_INFO, and which int counts sets


def _ipc_in_use(kind: str) -> bool:
    """Whether the IPC namespace holds any object of `kind`: one system call, no file to read."""
    command, field = _IPC_INFO[kind]
    info = (ctypes.c_int * 64)()
    if kind == "sem":
        result = _libc.semctl(0, 0, command, info)
    else:
        result = (_libc.shmctl if kind == "shm" else _libc.msgctl)(0, command, info)
    return result < 0 or info[field] > 0  # when in doubt, look


def _remove_ipc() -> None:
    """Remove the SysV shared memory, queues and semaphores, and the POSIX queues, that runs left."""
    for kind, control in (("shm", _libc.shmctl), ("msg", _libc.msgctl), ("sem", _libc.semctl)):
        if not _ipc_in_use(kind):
            continue
        try:
            with open(f"/proc/sysvipc/{kind}") as table:
                ids = [int(line.split()[1]) for line in table.read().splitlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        for number in ids:
            if kind == "sem":
                control(number, 0, IPC_RMID)
            else:
                control(number, IPC_RMID, None)
    for entry in _entries("/dev/mqueue"):
        _remove(os.unlink, entry.path)


if __name__ == "__main__":
    main()
