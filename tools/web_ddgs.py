"""The ddgs metasearch library for `tools.search.DdgsBackend`, run in a child process.

ddgs cannot be stopped from outside once it has started a search: `DDGS.text` asks the engines in
rounds from a thread pool and returns only when every request it started has ended, each bounded
by primp's whole-request timeout, so one search takes several timeouts when the engines are slow
(measured: about 4 s with `timeout=1`, about 8 s with `timeout=2`, against a proxy that drips).
An abandoned search would go on in the agent's process with its threads and sockets. So ddgs
runs in a worker process, started on the first search and reused; a search that outlives its
attempt's time kills the worker, and with it everything the search had open. The next search
starts a new one (about half a second).

`ddgs_text` maps ddgs's errors to the kinds `WebSearch` retries or not; the worker runs it with
the real `DDGS`, and a backend handed a client (tests: a recorded `DDGS`) runs it in this process.

It does not pick engines or rank results: ddgs does ("auto" asks Wikipedia and Grokipedia first).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STARTUP_SECONDS = 20.0
"""Most a new worker may take to import ddgs, if the search that starts it has that long."""


class RateLimited(Exception):
    """The search engine asked us to slow down: worth another try after a pause."""


def ddgs_text(
    client: Callable[..., Any], query: str, max_results: int, timeout: float, proxy: str | None = None, **options: Any
) -> list[Any]:
    """The rows of `client(...).text(query, ...)`; failures as RateLimited, TimeoutError, ConnectionError or ValueError.

    ddgs reports every failure as `DDGSException`, with the last engine's error as its argument;
    that argument tells a transport error (network, timeout) from an unreadable engine answer. An
    engine that throttles answers with a non-200 status, which ddgs counts as "no results": a rate
    limit then shows up as an empty list, not as `RateLimited`.
    """
    from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

    # ddgs takes whole seconds; rounding down keeps the attempt inside its share of the deadline.
    built = client(proxy=proxy, timeout=max(1, int(timeout)))
    try:
        rows = built.text(query, max_results=max_results, **options)
    except DDGSException as exc:
        cause = exc.args[0] if exc.args else None
        cause = cause if isinstance(cause, BaseException) else exc
        if isinstance(cause, RatelimitException):
            raise RateLimited(str(cause)) from exc
        if isinstance(cause, TimeoutException):
            raise TimeoutError(str(cause)) from exc
        if cause is exc:  # "No results found." (or an empty query): nothing went wrong
            return []
        if isinstance(cause, DDGSException):  # ddgs's HTTP client wraps every transport error so
            raise ConnectionError(str(cause)) from exc
        raise ValueError(f"unreadable answer from a search engine ({type(cause).__name__})") from exc
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


_ERRORS: dict[str, type[Exception]] = {
    "RateLimited": RateLimited,
    "TimeoutError": TimeoutError,
    "ConnectionError": ConnectionError,
    "ValueError": ValueError,
}


def _serve() -> None:
    """Worker main loop: a JSON request per line in, a JSON answer per line out, until stdin closes."""
    from ddgs import DDGS

    channel, sys.stdout = sys.stdout, sys.stderr  # a stray print must not corrupt the protocol

    def reply(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    reply({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply({"rows": ddgs_text(DDGS, **request)})
        except Exception as exc:  # handed to the parent, which raises it as the same kind
            kind = next((name for name, cls in _ERRORS.items() if isinstance(exc, cls)), "Exception")
            reply({"error": kind, "message": str(exc)[:1000]})


class _Worker:
    """The parent's handle on the ddgs process: started lazily, killed when a search runs late."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    def ask(self, request: dict[str, Any], seconds: float) -> list[Any]:
        """ddgs rows for `request`, or an exception of its kind; TimeoutError once `seconds` pass."""
        deadline = time.monotonic() + seconds
        if not self._lock.acquire(timeout=max(seconds, 0.0)):
            raise TimeoutError("another search is still running")
        try:
            if self._process is None or self._process.poll() is not None:
                self._start(deadline)
            assert self._process is not None and self._process.stdin is not None
            try:
                self._process.stdin.write(json.dumps(request).encode() + b"\n")
                self._process.stdin.flush()
                answer = self._read(deadline)
            except BaseException:  # late, broken or interrupted: a late answer must not be read as the next one's
                self.stop()
                raise
        finally:
            self._lock.release()
        if "error" in answer:
            raise _ERRORS.get(answer["error"], Exception)(answer.get("message", ""))
        rows = answer.get("rows")
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    def _start(self, deadline: float) -> None:
        root = str(Path(__file__).resolve().parents[1])
        boot = f"import sys; sys.path.insert(0, {root!r}); from tools.web_ddgs import _serve; _serve()"
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", boot],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self._buffer = b""
        try:
            ready = self._read(min(deadline, time.monotonic() + STARTUP_SECONDS))
        except BaseException:
            self.stop()
            raise
        if ready != {"ready": True}:
            self.stop()
            raise RuntimeError("the search process failed to start")

    def _read(self, deadline: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("the search engines did not answer in time")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise RuntimeError("the search process stopped unexpectedly")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer = json.loads(line)
        return answer if isinstance(answer, dict) else {}

    def stop(self) -> None:
        """Kill the worker (and so any search it is running), and close its pipes."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None


worker = _Worker()
"""The one ddgs process of this agent."""
atexit.register(worker.stop)
