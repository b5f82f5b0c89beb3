"""One HTTP GET under one deadline, and a hard time limit for calls that cannot be given one.

`http_fetch` sends a GET to an address the guard approved and reads the answer with stdlib
`http.client`, over a socket that re-arms its timeout before every read and write to the time
left until the deadline: connect, TLS handshake, status line, headers and body together end when
it passes, so a server that drips a byte every few seconds holds the call no longer than a
silent one, and the socket is closed when the call returns. `run_within` is for what has no
timeout to set (DNS lookups, a search library): it gives up on the call at the deadline.

It does not follow redirects, decompress, send cookies or retry.
"""

from __future__ import annotations

import functools
import http.client
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

from tools.registry import ToolError

T = TypeVar("T")

USER_AGENT = "Mozilla/5.0 (compatible; qwq-agent read_page)"


@dataclass(frozen=True)
class Response:
    """One HTTP response, redirects not followed."""

    status: int
    """HTTP status code."""
    headers: Mapping[str, str]
    """Header fields, names in lower case."""
    body: bytes
    """At most the `max_bytes` asked for; the rest of a larger body is never read."""


class Fetcher(Protocol):
    """Sends one GET for `url` to `address` (checked by the guard); does not follow redirects.

    Returns or raises within `timeout` seconds, the whole exchange included. Raises OSError
    (TimeoutError when the time is up), `http.client.HTTPException` or ValueError (a URL it
    cannot send) when the exchange fails.
    """

    def __call__(self, url: str, address: str, timeout: float, max_bytes: int) -> Response: ...


def _arm(sock: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    sock.settimeout(left)


class _DeadlineSocket(socket.socket):
    """A TCP socket whose every read and write ends by `deadline` (a `time.monotonic()` value)."""

    deadline = math.inf

    def recv_into(self, *args: Any) -> int:
        _arm(self, self.deadline)
        return super().recv_into(*args)

    def sendall(self, *args: Any) -> None:
        _arm(self, self.deadline)
        super().sendall(*args)


class _DeadlineSSLSocket(ssl.SSLSocket):
    """The same over TLS (made by `SSLContext.wrap_socket`, whose `sslsocket_class` it is)."""

    deadline = math.inf

    def recv_into(self, *args: Any) -> int:
        _arm(self, self.deadline)
        return super().recv_into(*args)

    def sendall(self, *args: Any) -> None:
        _arm(self, self.deadline)
        super().sendall(*args)


def make_tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """Certificates (the system's, or those in `cafile`) and host names verified, as by a browser."""
    context = ssl.create_default_context(cafile=cafile)
    context.sslsocket_class = _DeadlineSSLSocket  # its sockets keep to the deadline too
    return context


tls_context = functools.cache(make_tls_context)
"""The context `http_fetch` uses, made once: loading the system's certificates is slow."""


def _connect(address: str, port: int, server_name: str | None, deadline: float) -> socket.socket:
    """A socket connected to `address` (TLS to `server_name` unless None), bound to `deadline`."""
    sock = _DeadlineSocket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.deadline = deadline
        _arm(sock, deadline)
        sock.connect((address, port))
        if server_name is None:
            return sock
        tls = tls_context().wrap_socket(sock, server_hostname=server_name, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        assert isinstance(tls, _DeadlineSSLSocket)
        tls.deadline = deadline
        _arm(tls, deadline)
        tls.do_handshake()  # one call: the ssl module gives the whole handshake the timeout just set
        return tls
    except BaseException:
        tls.close()
        raise


_URL_SAFE = "/?%:@!$&'()*+,;=~"  # reserved characters and escapes pass through quote() untouched


def http_fetch(url: str, address: str, timeout: float, max_bytes: int) -> Response:
    """The default `Fetcher`: stdlib http.client to `address`, TLS verified against the host name."""
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host, port = (parts.hostname or "").encode("idna").decode("ascii"), parts.port or (443 if https else 80)
    # Spaces and non-ASCII in a model-written URL are percent-encoded; existing escapes are kept.
    target = quote(parts.path or "/", safe=_URL_SAFE) + (
        f"?{quote(parts.query, safe=_URL_SAFE)}" if parts.query else ""
    )
    name = f"[{host}]" if ":" in host else host
    # Connect to the address the guard approved, not to whatever DNS answers now (rebinding);
    # the Host header and TLS server name still carry the host name.
    sock = _connect(address, port, host if https else None, deadline)
    connection = http.client.HTTPConnection(host, port)
    connection.sock = sock  # so http.client never connects by itself
    try:
        connection.request(
            "GET",
            target,
            headers={
                "Host": name if port == (443 if https else 80) else f"{name}:{port}",
                "User-Agent": USER_AGENT,
                "Accept": "text/html, text/plain;q=0.9",
                "Accept-Encoding": "identity",
            },
        )
        response = connection.getresponse()
        headers = {field.lower(): value for field, value in response.getheaders()}
        return Response(response.status, headers, response.read(max_bytes))
    finally:
        connection.close()
        sock.close()


def run_within(seconds: float, call: Callable[[], T], failure: str) -> T:
    """Return `call()`, or raise `ToolError(f"{failure}: no answer within … s")` once `seconds` pass.

    The call runs in a daemon thread: a library stuck in DNS or a socket read cannot hold the agent,
    and an abandoned call does not keep the process alive at exit. The thread itself ends only when
    the call does: give the call a timeout of its own wherever it takes one.
    """
    outcome: list[tuple[bool, Any]] = []
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))
        finally:
            finished.set()

    thread = threading.Thread(target=run, name="qwq-web", daemon=True)
    thread.start()
    if not finished.wait(max(seconds, 0.0)):
        raise ToolError(f"{failure}: no answer within {round(seconds, 1):g} s; try again later")
    thread.join()  # it has finished its work: wait the moment it takes to end, so none is left counted
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
