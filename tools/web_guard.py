"""The URL guard of `read_page`: which URLs may be fetched, and at which address.

Before every request (the first and each redirect) the guard resolves the host and refuses the
URL if any address is loopback, private, link-local, cloud-metadata or otherwise not public; the
fetch then connects to the address that was checked, so DNS cannot answer differently between
check and connect. A URL that does not even parse (`http://[127.0.0.1]/`) is refused too.

It does not fetch anything, and it cannot stop a public server from saying what it likes.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from tools.registry import ToolError
from tools.web_text import shown_host, shown_url

Resolver = Callable[[str, int], list[str]]
"""`(host, port) -> addresses`; raises OSError when the name does not resolve."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud instance-metadata endpoints (AWS, ECS, Alibaba, AWS IPv6): credentials live there."""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused_kind(address: str) -> str | None:
    """Why `address` may not be fetched ("loopback", "private", …), or None for a public address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unparseable"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "cloud-metadata"
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-public"  # e.g. 100.64.0.0/10, carrier-grade NAT


def check_url(url: str, resolve: Resolver = resolve_host, *, redirected: bool = False) -> str:
    """The address to connect to for `url`, after checking its scheme and every address its host has.

    Raises `ToolError` for a URL that does not parse, a scheme other than http(s), a host that does
    not resolve, or a host with any loopback, private, link-local, metadata or other non-public
    address. A `redirected` URL is a site's choice, not the caller's: its errors quote none of it.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a bad port, or brackets around something that is no IPv6 address
        raise ToolError(f"refused {_named(url, None, redirected)}: it is not a well-formed URL") from None
    if parts.scheme not in ("http", "https"):
        raise ToolError(f"refused {_named(url, None, redirected)}: only http:// and https:// pages can be read")
    if not host:
        raise ToolError(f"refused {_named(url, None, redirected)}: the URL names no host")
    try:
        addresses = resolve(host, port)
    except (OSError, ValueError):  # UnicodeError: a label IDNA cannot encode; ValueError: a NUL
        raise ToolError(
            f"could not read page: {_named(url, host, redirected)} does not resolve (no such host or no network)"
        ) from None
    if not addresses:
        raise ToolError(f"could not read page: {_named(url, host, redirected)} has no address")
    for address in addresses:
        if kind := refused_kind(address):
            shown = shown_host(address.split("%", 1)[0])  # an address, from the resolver
            raise ToolError(
                f"refused {_named(url, host, redirected)}: it resolves to {shown} ({kind} address); "
                "only public web pages can be read"
            )
    return addresses[0]


def _named(url: str, host: str | None, redirected: bool) -> str:
    if redirected:
        return "the redirect" if host is None else "the host it redirected to"
    return repr(shown_url(url)) if host is None else f"the host {shown_host(host)!r}"
