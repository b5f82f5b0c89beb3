"""The Python sandbox, attacked: reading, writing, the network, signals, processes, limits, escapes.

Strict mode is on throughout: on a machine without bubblewrap these tests fail instead of running
hostile code unconfined. Each attack asserts its effect on the host, and the shared `box` fixture
checks after every test that the sandbox still answers and that nothing the code started survives.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_support import check_after

from tools import sandbox as sandbox_module
from tools.sandbox import Sandbox

SECRET = "qwq-sandbox-test-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    os.environ["QWQ_TEST_SECRET"] = SECRET  # present before the worker starts: it must not leak
    with Sandbox(strict=True) as box:
        yield box
    del os.environ["QWQ_TEST_SECRET"]


@pytest.fixture()
def box(shared: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox, checked after the test: it still works and has nothing left running."""
    yield shared
    check_after(shared)


# Reading the user's files and secrets.


@pytest.mark.parametrize(
    "path",
    [
        Path.home() / ".bashrc",
        Path(__file__),
        Path(sandbox_module.__file__),
        Path("/etc/shadow"),
        Path("/etc/passwd"),
        Path(__file__).parents[1] / ".git" / "config",
    ],
)
def test_host_files_are_invisible(box: Sandbox, path: Path) -> None:
    result = box.run(f"print(open({str(path)!r}).read())")
    assert result.error == "exception" and "FileNotFoundError" in result.stderr


def test_planted_secret_in_home_and_host_tmp_is_invisible(box: Sandbox, tmp_path: Path) -> None:
    planted = [Path.home() / f".{SECRET}", tmp_path / SECRET]
    for path in planted:
        path.write_text(SECRET)
    try:
        code = f"import os\nfor p in {[str(p) for p in planted]!r}: print(os.path.exists(p))"
        result = box.run(code + "\nprint(os.listdir('/tmp'), os.listdir(os.path.expanduser('~')))")
    finally:
        for path in planted:
            path.unlink()
    assert result.ok and result.stdout.startswith("False\nFalse\n") and SECRET not in result.stdout


def test_environment_of_the_agent_does_not_leak(box: Sandbox) -> None:
    code = """
import glob, os
print(sorted(os.environ))
for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):
    try: data = open(path, 'rb').read()
    except OSError as exc: print(path, type(exc).__name__)
    else: print(path, data if 'environ' in path else b'QWQ_TEST_SECRET' in data)
"""
    result = box.run(code)
    assert result.ok, result
    assert SECRET not in result.stdout and "QWQ_TEST_SECRET" not in result.stdout


def test_other_processes_of_the_host_are_invisible(box: Sandbox) -> None:
    result = box.run("import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    assert len(eval(result.stdout)) <= 3  # bubblewrap's init, the worker, the runner


# Writing outside the scratch directory; files planted for a later run.


@pytest.mark.parametrize(
    "path",
    [
        "/usr/qwq-planted",
        "/qwq-planted",
        "/root/qwq-planted",
        f"{sys.prefix}/qwq-planted",
        "/dev/shm/qwq-planted",
    ],
)
def test_writes_outside_scratch_fail(box: Sandbox, path: str) -> None:
    result = box.run(f"open({path!r}, 'w').write('x')")
    assert result.error == "exception"
    assert any(name in result.stderr for name in ("Read-only", "PermissionError", "FileNotFoundError"))
    assert not os.path.exists(path)


def test_files_planted_for_a_later_run_are_gone(box: Sandbox) -> None:
    plant = """
import os, sys
open('numpy.py', 'w').write('raise SystemExit("planted")')
open('sitecustomize.py', 'w').write('print("planted")')
os.makedirs('/tmp/deep/locked', exist_ok=True)
open('/tmp/deep/locked/note', 'w').write('planted')
os.chmod('/tmp/deep/locked', 0)
os.chmod('/tmp/deep', 0)
print(os.getcwd())
"""
    assert box.run(plant).ok
    later = box.run("import os, numpy; print(sorted(os.listdir('.')), numpy.__name__)")
    # Only the read-only Python installation may stand in the scratch (a checkout under /tmp).
    installed = sorted({Path(p).parts[2] for p in (sys.prefix, sys.base_prefix) if Path(p).parts[1:2] == ("tmp",)})
    assert later.ok and later.stdout == f"{installed} numpy\n", later


def test_state_poisoned_in_one_run_is_gone_in_the_next(box: Sandbox) -> None:
    poison = "import builtins, sys, numpy\nbuiltins.print = None\nsys.modules['numpy'] = None\nnumpy.pi = 3"
    assert box.run(poison).ok
    assert box.run("import numpy; print(round(numpy.pi, 2))").stdout == "3.14\n"


# Network.


def test_loopback_listener_of_the_host_is_unreachable(box: Sandbox) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        result = box.run(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)")
        assert result.error == "exception" and "ConnectionRefusedError" in result.stderr
        with pytest.raises(TimeoutError):
            listener.accept()


def test_no_route_to_the_outside(box: Sandbox) -> None:
    result = box.run("import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)")
    assert result.error == "exception" and "unreachable" in result.stderr.lower()
    devices = box.run("print(open('/proc/net/dev').read().split()[-17:-16])")
    assert devices.stdout.strip() == "['lo:']"


# Signalling or killing the agent and the worker.


def test_killing_the_agent_pid_does_not_reach_it(box: Sandbox) -> None:
    result = box.run(f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)")
    assert result.error in ("exception", "killed", None)  # pid missing, or some sandbox process died


def test_killing_every_process_in_reach_kills_only_the_sandbox(box: Sandbox) -> None:
    result = box.run("import os, signal\nos.kill(-1, signal.SIGKILL)\nimport time; time.sleep(5)", 3)
    assert result.error == "killed"


def test_killing_the_worker_is_a_failed_run(box: Sandbox) -> None:
    result = box.run("import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(5)", 3)
    assert result.error == "killed" and result.duration < 3


def test_stopping_the_worker_hits_the_host_deadline(box: Sandbox) -> None:
    result = box.run("import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nwhile True: pass", 0.5)
    assert result.error == "timeout"
    assert result.duration < 0.5 + sandbox_module._GRACE + 0.5


def test_worker_memory_and_pipes_are_closed_to_the_code(box: Sandbox) -> None:
    code = """
import os
worker = os.getppid()
for path in (f'/proc/{worker}/mem', f'/proc/{worker}/environ', f'/proc/{worker}/fd/1'):
    try: open(path, 'rb'); print('opened', path)
    except OSError as exc: print(type(exc).__name__)
print(sorted(os.listdir('/proc/self/fd')))
"""
    result = box.run(code)
    assert result.ok and "opened" not in result.stdout, result


# Processes: fork bombs, daemons, escaping the group.


def test_fork_bomb_is_capped_and_swept(box: Sandbox) -> None:
    code = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
    result = box.run(code, 2)
    assert result.error in ("timeout", "killed")


def test_process_limit_holds_even_when_the_agent_is_root(box: Sandbox) -> None:
    code = """
import os, time
started = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
        started += 1
except OSError as exc:
    print(started, exc.strerror)
"""
    result = box.run(code, 5)
    started, reason = result.stdout.split(" ", 1)
    assert int(started) < box.limits.processes and "Resource temporarily unavailable" in reason


def test_daemons_do_not_survive_the_run(box: Sandbox) -> None:
    code = """
import os, subprocess, time
subprocess.Popen(['sleep', '300'])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1)
        open('/tmp/daemon-was-here', 'w').write('x')
        time.sleep(300)
    os._exit(0)
print('started')
"""
    assert box.run(code).ok
    time.sleep(1.5)
    assert box.run("import os; print(os.path.exists('/tmp/daemon-was-here'))").stdout == "False\n"


def test_timeout_kills_the_whole_group(box: Sandbox) -> None:
    code = "import subprocess\nfor _ in range(5): subprocess.Popen(['sleep', '300'])\nwhile True: pass"
    result = box.run(code, 1)
    assert result.error == "timeout"


def test_limits_cannot_be_raised_or_dropped(box: Sandbox) -> None:
    code = """
import os, resource
for attempt in (lambda: resource.setrlimit(resource.RLIMIT_NPROC, (10**6, 10**6)), lambda: os.setuid(0),
                lambda: os.chroot('/tmp')):
    try: attempt(); print('allowed')
    except (OSError, ValueError) as exc: print(type(exc).__name__)
print(os.getuid(), os.geteuid())
"""
    result = box.run(code)
    assert result.ok and "allowed" not in result.stdout and "65534 65534" in result.stdout


# Time, memory, output, disk.


def test_infinite_loop_is_killed_within_its_timeout(box: Sandbox) -> None:
    result = box.run("while True: pass", 1.0)
    assert result.error == "timeout" and result.duration < 1.2


def test_huge_integer_is_stopped(box: Sandbox) -> None:
    result = box.run("x = 7 ** (10 ** 10)", 1.0)
    assert result.error in ("timeout", "memory") and result.duration < 1.2


def test_huge_integer_to_text_is_refused(box: Sandbox) -> None:
    result = box.run("print(10 ** 100000)")
    assert result.error == "exception" and "ValueError" in result.stderr


@pytest.mark.parametrize(
    "code",
    [
        "x = bytearray(8 << 30)",
        "x = []\nwhile True: x.append(bytearray(1 << 24))",
        "import numpy\nnumpy.ones(10**10)",
    ],
)
def test_memory_bombs_raise_memory_error(box: Sandbox, code: str) -> None:
    result = box.run(code, 5)
    assert result.error == "memory" and "MemoryError" in result.stderr


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood_is_cut(box: Sandbox, stream: str) -> None:
    result = box.run(f"import sys\nwhile True: sys.{stream}.write('x' * 1000)", 10)
    assert result.error == "output_limit" and result.truncated and result.duration < 5
    assert len(getattr(result, stream)) <= box.limits.output_bytes


def test_disk_filling_is_capped(box: Sandbox) -> None:
    code = """
import os
try:
    with open('big', 'wb') as f:
        for _ in range(1024): f.write(b'x' * (1 << 20))
except OSError as exc: print('big:', exc.strerror)
try:
    for i in range(100): open(f'part{i}', 'wb').write(b'x' * (15 << 20))
except OSError as exc: print('parts:', exc.strerror)
"""
    result = box.run(code)
    assert "big: File too large" in result.stdout and "parts: No space left on device" in result.stdout


# Escapes through Python's own machinery; they only reach what the sandbox has.


def test_subclasses_gadget_reaches_only_the_sandbox(box: Sandbox) -> None:
    code = """
wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]
system = wrap.__init__.__globals__['system']
print(system('cat /etc/shadow /root/.bashrc; ls /work/main 2>&1'))
"""
    result = box.run(code)
    assert result.ok and ".git" not in result.stdout and "root:" not in result.stdout


def test_ctypes_cannot_mount_or_signal_the_agent(box: Sandbox) -> None:
    code = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print(libc.mount(b'none', b'/tmp', b'proc', 0, None), ctypes.get_errno())
print(libc.kill({os.getpid()}, 9))
"""
    result = box.run(code)
    assert result.ok and result.stdout.startswith("-1")


def test_segfault_through_ctypes_is_a_killed_run(box: Sandbox) -> None:
    result = box.run("import ctypes; ctypes.string_at(0)")
    assert result.error == "killed" and "SIGSEGV" in result.stderr


def test_frames_lead_only_to_the_runner(box: Sandbox) -> None:
    code = """
import os, sys
frame = sys._getframe()
while 'status' not in frame.f_locals: frame = frame.f_back
os.write(frame.f_locals['status'], b'{"error": null}\\n')
open('/tmp/after-forgery', 'w').write('x')
while True: pass
"""
    # The code can forge its own result, no more: the run still ends, and is swept like any other.
    assert box.run(code, 2).duration < 1
    assert box.run("import os; print(os.path.exists('/tmp/after-forgery'))").stdout == "False\n"


def test_project_modules_are_not_importable(box: Sandbox) -> None:
    result = box.run("import tools.registry")
    assert result.error == "exception" and "ModuleNotFoundError" in result.stderr


def test_stdin_is_closed(box: Sandbox) -> None:
    result = box.run("input()")
    assert result.error == "exception" and "EOFError" in result.stderr
