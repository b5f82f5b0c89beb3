"""The ddgs metasearch library for `tools.search.DdgsBackend`, run in a child process.

ddgs cannot be stopped from outside once it has started a search: `DDGS.text` asks the engines in
rounds from a thread pool and returns only when every request it started has ended, each bounded
by primp's whole-request timeout, so one search takes several timeouts when the engines are slow
(measured: about 4 s with `timeout=1`, about 8 s with `timeout=2`, against a proxy that drips).
An abandoned search would go on in the agent's process with its threads and sockets (measured:
three threads and two sockets per abandoned search, still there seconds later). So ddgs runs in
a worker process (`tools.worker`), started on the first search and reused; a search that
outlives its attempt's time kills the worker's process group, and with it everything the search
had open. The next search starts a new one (about half a second).

`ddgs_text` maps ddgs's errors to the kinds `WebSearch` retries or not; the worker runs it with
the real `DDGS`, and a backend handed a client (tests: a recorded `DDGS`) runs it in this process.

It does not pick engines or rank results: ddgs does ("auto" asks Wikipedia and Grokipedia first).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.worker import Launch, Worker, WorkerError, WorkerTimeout

STARTUP_SECONDS = 10.0
"""Most a new worker may take to import ddgs and say it is ready (slow CI disks)."""


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


def _launch() -> Launch:
    root = str(Path(__file__).resolve().parents[1])
    boot = f"import sys; sys.path.insert(0, {root!r}); from tools.web_ddgs import _serve; _serve()"
    return Launch([sys.executable, "-I", "-c", boot])


_worker = Worker(_launch, startup_seconds=STARTUP_SECONDS, max_line_bytes=1 << 22)


def search_in_worker(request: dict[str, Any], timeout: float) -> list[Any]:
    """The rows `ddgs_text(DDGS, **request)` gives in the worker, or the exception it raised there.

    Past `timeout` seconds (a cold start's import not counted) the worker is killed, and with it
    the search, and TimeoutError raised.
    """
    try:
        answer = _worker.ask(request, timeout)
    except WorkerTimeout:
        raise TimeoutError("the search engines did not answer in time") from None
    except WorkerError as exc:  # died, garbled or never started: a fresh worker is started next time
        raise RuntimeError(f"the search process failed: {exc}") from None
    if "error" in answer:
        raise _ERRORS.get(answer["error"], Exception)(answer.get("message", ""))
    rows = answer.get("rows")
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
