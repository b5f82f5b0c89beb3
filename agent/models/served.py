"""What the server backends share: one HTTP client, one-line errors, streamed events, safe retries.

`Connection` wraps an httpx client for one API root. `Connection.events(path, body)` posts a
streamed request and yields its server-sent events as dicts; every way it can go wrong (no
server, a refused key, a 4xx/5xx, a timeout, a server dying mid-answer, a line that is not JSON)
ends in a one-line `ModelError` naming the server. A request that fails before its first event
is retried where that is safe, since nothing of it reached the agent yet: no connection,
HTTP 429, 502, 503 (llama.cpp's server while it loads), 504. Once an event is out, a failure is
an error, never a silent short answer.

This module knows no request format (see `agent.models.openai`, `agent.models.llama_server`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from typing import Any

from agent.models.protocol import ModelError

RETRIED_STATUS = frozenset({429, 502, 503, 504})
"""Statuses that mean "not now": the request did nothing, so sending it again is safe."""
RETRY_DELAY = 1.0
"""Seconds before the first retry; the next waits twice as long."""


class Unavailable(ModelError):
    """The server could not take a request at all (retries included): another server may."""


class Connection:
    """An API root and a pooled, thread-safe client for it."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 600.0, retries: int = 2) -> None:
        """`timeout`: seconds to wait for the next streamed event (a CPU prefill can take minutes).

        `retries`: further attempts, one and then two `RETRY_DELAY`s apart, at a request that failed before
        its first event for a reason that makes another attempt safe (`RETRY_DELAY`).
        """
        import httpx

        self.base_url = base_url.rstrip("/")
        self.root = self.base_url.removesuffix("/v1")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))
        self.retries = retries

    def get(self, url: str) -> Any:
        """GET a JSON document; `ModelError` if the server is unreachable or says no."""
        import httpx

        try:
            response = self.http.get(url, timeout=10.0)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the model server at {self.base_url}: {_reason(exc)}") from None
        if response.status_code != 200:
            raise self.error(response)
        return self._json(response.text)

    def optional(self, url: str) -> dict[str, Any]:
        """A JSON object the server may not have (llama.cpp's `/props`); {} when it has none."""
        import httpx

        try:
            response = self.http.get(url, timeout=10.0)
            data = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def post(self, url: str, body: dict[str, Any]) -> Any:
        """POST and read a JSON answer (short requests such as `/tokenize`), retried where safe."""
        import httpx

        for attempt in range(self.retries + 1):
            try:
                response = self.http.post(url, json=body, timeout=60.0)
            except httpx.TransportError as exc:
                if attempt < self.retries and not isinstance(exc, httpx.TimeoutException):
                    time.sleep(RETRY_DELAY * (attempt + 1))
                    continue
                raise Unavailable(f"cannot reach the model server at {self.base_url}: {_reason(exc)}") from None
            if response.status_code in RETRIED_STATUS and attempt < self.retries:
                time.sleep(RETRY_DELAY * (attempt + 1))
                continue
            if response.status_code != 200:
                raise self.error(response)
            return self._json(response.text)
        raise AssertionError("unreachable")

    def events(self, url: str, body: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
        """Stream a request's server-sent events (`data: {...}` lines) until `[DONE]` or the end."""
        import httpx

        attempt, started = 0, False
        while True:
            try:
                with self.http.stream("POST", url, json=body) as response:
                    if response.status_code != 200:
                        response.read()
                        if response.status_code in RETRIED_STATUS and attempt < self.retries:
                            raise _Again
                        raise self.error(response)
                    for line in response.iter_lines():
                        if line.startswith("error:"):  # llama.cpp's server reports a failure mid-stream so
                            raise ModelError(f"the model server at {self.base_url} failed: {line[6:].strip()[:300]}")
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        event = self._json(data)
                        if not isinstance(event, dict):
                            raise self._malformed(data)
                        if "error" in event:
                            raise ModelError(f"the model server at {self.base_url} failed: {_detail(event['error'])}")
                        started = True
                        yield event
                return
            except _Again:
                pass
            except httpx.TransportError as exc:
                if started:
                    raise ModelError(f"the model server at {self.base_url} failed mid-answer: {_reason(exc)}") from None
                if isinstance(exc, httpx.TimeoutException):  # it may be busy on our request: no second one
                    raise ModelError(f"the model server at {self.base_url} timed out: {_reason(exc)}") from None
                if attempt >= self.retries:
                    raise Unavailable(f"cannot reach the model server at {self.base_url}: {_reason(exc)}") from None
            except httpx.HTTPError as exc:
                raise ModelError(f"the model server at {self.base_url} failed: {_reason(exc)}") from None
            attempt += 1
            time.sleep(RETRY_DELAY * attempt)

    def error(self, response: Any) -> ModelError:
        """The one-line error for a response that is not a success."""
        status = response.status_code
        if status in (401, 403):
            return ModelError(f"the model server at {self.base_url} refused the API key (HTTP {status})")
        detail = response.text.strip().replace("\n", " ")[:300]
        kind = Unavailable if status in RETRIED_STATUS else ModelError
        return kind(f"the model server at {self.base_url} answered HTTP {status}: {detail}")

    def _json(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise self._malformed(text) from None

    def _malformed(self, text: str) -> ModelError:
        shown = text.strip().replace("\n", " ")[:120]
        return ModelError(f"the model server at {self.base_url} sent a malformed response: {shown!r}")

    def close(self) -> None:
        """Close the connections."""
        self.http.close()


class _Again(Exception):
    """A status worth another attempt."""


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _detail(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error
    return str(error).replace("\n", " ")[:300]
