"""A child process that answers JSON lines over pipes: start, ask with a deadline, restart, stop.

`Worker` keeps one long-lived child, started from a `Launch` (argv, environment, directory,
cleanup). A request is one JSON object on a line of the child's stdin; the answer is one JSON
object on a line of its stdout, and the child's first line says it is ready. The child runs in a
session of its own, so Ctrl-C at the terminal reaches only the parent, and stopping it kills its
whole process group. The parent waits in `select`, so its other threads keep running.

Whatever goes wrong ends that child: a missed deadline (`WorkerTimeout`), a child that exits or
closes its pipes (`WorkerDied`), a line that is not one JSON object or is longer than
`max_line_bytes` (`WorkerGarbled`), a child that never says it is ready (`StartFailed`), or any
exception in the caller mid-call (a late answer must not be read as the next one's). The next
call starts a fresh child; with `eager=True` the fresh child starts at once, so it is warm.

It does not: interpret requests or answers, retry a request, isolate the child (the command in
`Launch` does that), drain the child's stderr while it runs (a child that captures stderr must
keep it short), or run on Windows (it needs POSIX pipes, sessions and `select`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Launch:
    """How to start one child, and what to undo once it is dead."""

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    capture_stderr: bool = False
    """Keep the child's stderr for `StartFailed` and `WorkerDied` (else it goes to /dev/null)."""
    cleanup: Callable[[], None] | None = None
    """Called after the child is dead, e.g. to remove its scratch directory."""


class WorkerError(Exception):
    """The child failed this call; it has been stopped. `stderr` is its last words, if captured."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class WorkerTimeout(WorkerError):
    """No answer before the deadline."""


class WorkerDied(WorkerError):
    """The child exited, was killed, or closed its pipes."""


class WorkerGarbled(WorkerError):
    """The child wrote something that is not one JSON object per line, or a line too long."""


class StartFailed(WorkerError):
    """The child could not be started, or did not say it was ready in time."""


class Worker:
    """The parent's handle on one child process; safe to share between threads (calls queue)."""

    def __init__(
        self,
        launch: Callable[[], Launch],
        *,
        startup_seconds: float = 30.0,
        max_line_bytes: int = 1 << 24,
        eager: bool = False,
    ) -> None:
        self.launch = launch
        self.startup_seconds = startup_seconds
        self.max_line_bytes = max_line_bytes
        self.eager = eager
        self.greeting: dict[str, Any] | None = None
        """The child's ready line, once it has said it."""
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._finalizer: weakref.finalize | None = None
        if eager:
            self.start()

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one is running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Start a child unless one is running; do not wait for it to be ready."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return
            self._stop()
            launch = self.launch()
            try:
                process = subprocess.Popen(
                    list(launch.argv),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE if launch.capture_stderr else subprocess.DEVNULL,
                    env=None if launch.env is None else dict(launch.env),
                    cwd=launch.cwd,
                    start_new_session=True,
                    bufsize=0,
                )
            except OSError as exc:
                if launch.cleanup is not None:
                    launch.cleanup()
                raise StartFailed(f"could not start: {exc}") from None
            self._process, self._buffer, self.greeting = process, b"", None
            self._finalizer = weakref.finalize(self, _kill, process, launch.cleanup)

    def ask(self, request: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """Send `request`; its answer within `timeout` seconds (startup not counted), or WorkerError."""
        with self._lock:
            try:
                self.start()
                if self.greeting is None:
                    self.greeting = self._receive(time.monotonic() + self.startup_seconds, starting=True)
                self._send(request)
                return self._receive(time.monotonic() + timeout, starting=False)
            except BaseException:
                self._stop()
                if self.eager:
                    with contextlib.suppress(StartFailed):
                        self.start()
                raise

    def stop(self) -> None:
        """Kill the child and its process group, and run its cleanup."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._process, self._finalizer = None, None

    def _send(self, request: Mapping[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
        except OSError:
            raise WorkerDied("the worker process died", self._stderr()) from None

    def _receive(self, deadline: float, *, starting: bool) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if len(self._buffer) > self.max_line_bytes:
                raise WorkerGarbled(f"the worker's answer is longer than {self.max_line_bytes:,} bytes")
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                if starting:
                    raise StartFailed("the worker process did not start in time", self._stderr())
                raise WorkerTimeout("the worker process did not answer in time")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                error = StartFailed if starting else WorkerDied
                raise error("the worker process died", self._stderr())
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise WorkerGarbled(f"the worker wrote a line that is not a JSON object: {line[:80]!r}")
        return answer

    def _stderr(self) -> str:
        """The dead or dying child's stderr, briefly ("" unless captured); kills the child first."""
        process = self._process
        if process is None or process.stderr is None:
            return ""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        fd, text, deadline = process.stderr.fileno(), b"", time.monotonic() + 1.0
        while len(text) < 4000 and select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(fd, 4000)
            if not chunk:
                break
            text += chunk
        return text.decode(errors="replace").strip()[-1000:]


def _kill(process: subprocess.Popen[bytes], cleanup: Callable[[], None] | None) -> None:
    """Kill a child's process group, reap it, close its pipes, then undo what its launch set up."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    if cleanup is not None:
        cleanup()
