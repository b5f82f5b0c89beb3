"""Read one web page for the agent, safely: the `read_page` tool.

`read_page` fetches a public http(s) page and returns its title, final URL and readable text
(`tools.web_html`), capped in length and cleaned (`tools.web_text`). Every request, the first and
each redirect, passes the URL guard (`tools.web_guard`) and goes to the address it checked. The
whole call, DNS, redirects, reading and parsing included, has one deadline: sockets are bound to
it (`tools.web_fetch`) and the work happens in the caller's thread, so nothing of a call is left
running, holding a socket or burning CPU once it has returned. Every failure, whatever the page
or the network did, reaches the model as a `ToolError`. Its text names hosts and URLs only from
the caller's own URL, sanitized and clipped, never one a redirect chose; of what a site sent it
quotes at most a media type's name.

It does not run JavaScript, read PDFs or images, send cookies, log in, or retry a failed fetch;
it does not judge what a page says: its text is labelled untrusted, and the agent records that
(the tool is made with `untrusted=True`).
"""

from __future__ import annotations

import http.client
import re
import time
from urllib.parse import urljoin, urlsplit

from tools.registry import ToolError, tool
from tools.web_cache import DiskCache, default_cache_dir
from tools.web_fetch import USER_AGENT, Fetcher, Response, http_fetch, run_within
from tools.web_guard import METADATA_ADDRESSES, Resolver, check_url, refused_kind, resolve_host
from tools.web_html import ParseTimeout, decode, extract_text
from tools.web_text import UNTRUSTED_NOTE, clip, sanitize, shown_host

__all__ = [  # the names other modules and older callers import from here
    "METADATA_ADDRESSES", "UNTRUSTED_NOTE", "USER_AGENT", "DiskCache", "Fetcher", "PageReader", "Resolver",
    "Response", "check_url", "clip", "default_cache_dir", "http_fetch", "read_page", "read_page_tool",
    "refused_kind", "resolve_host", "run_within", "sanitize",
]  # fmt: skip

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MEDIA_TYPE = re.compile(r"[\w.+-]{1,40}/[\w.+-]{1,60}")


class PageReader:
    """`read_page` with its policy: guard, deadline, redirect limit, size caps, cache."""

    def __init__(
        self,
        fetch: Fetcher = http_fetch,
        resolve: Resolver = resolve_host,
        *,
        cache: DiskCache | None = None,
        timeout: float = 5.0,
        deadline: float = 9.0,
        max_redirects: int = 5,
        max_bytes: int = 2_000_000,
        max_chars: int = 6_000,
    ) -> None:
        self.fetch = fetch
        self.resolve = resolve
        self.cache = cache if cache is not None else DiskCache()
        self.timeout = timeout
        """Seconds for one request, all of it: connect, TLS, headers and body."""
        self.deadline = deadline
        """Seconds for the whole call, DNS, redirects and parsing included; a hard limit."""
        self.max_redirects = max_redirects
        self.max_bytes = max_bytes
        """Bytes of a body read at most; the rest is never downloaded."""
        self.max_chars = max_chars
        """Characters of page text returned at most."""

    def read_page(self, url: str) -> str:
        """Fetch a web page and return its title, URL and readable text (navigation and scripts removed).

        Use it on a promising web_search result to read the details. Only public http(s) pages can be
        read; long pages are cut to about 6,000 characters.

        Args:
            url: The page's full http:// or https:// address, for example a URL from web_search.
        """
        url = url.strip()
        key = f"page\n{url}"
        if isinstance(cached := self.cache.get(key), str):
            return cached
        try:
            page = self._read(url, time.monotonic() + self.deadline)
        except ToolError:
            raise
        except Exception as exc:  # the page and the network are the environment: what they trip is theirs
            raise ToolError(f"could not read page: its answer could not be read ({type(exc).__name__})") from None
        self.cache.put(key, page)
        return page

    def _read(self, url: str, deadline: float) -> str:
        for hop in range(self.max_redirects + 1):
            address = check_url(url, self._resolver(deadline), redirected=hop > 0)
            # Only the caller's own URL is named: a host a site redirects to is text of the site's choosing.
            site = _site(url) if hop == 0 else "the site it redirected to"
            left = deadline - time.monotonic()
            if left <= 0:
                raise ToolError(f"could not read page: no answer within {self.deadline:g} s; try again later")
            timeout = min(self.timeout, left)
            try:
                response = self.fetch(url, address, timeout, self.max_bytes)
            except TimeoutError:
                raise ToolError(f"could not read page: {site} did not answer within {round(timeout, 1):g} s") from None
            except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: InvalidURL, IDNA
                raise ToolError(
                    f"could not read page: {site} failed ({type(exc).__name__}); try another result"
                ) from None
            location = response.headers.get("location")
            if response.status not in _REDIRECTS or not location:
                return self._render(url, site, response, deadline)
            try:
                url = urljoin(url, location.strip())  # checked by the guard at the top of the loop
            except ValueError:
                raise ToolError(f"could not read page: {site} redirected to a malformed URL") from None
        raise ToolError(f"could not read page: more than {self.max_redirects} redirects")

    def _resolver(self, deadline: float) -> Resolver:
        # DNS has no timeout to set: the lookup runs in a thread that the call gives up on at the deadline.
        def resolve(host: str, port: int) -> list[str]:
            left = deadline - time.monotonic()
            return run_within(left, lambda: self.resolve(host, port), "could not read page")

        return resolve

    def _render(self, url: str, site: str, response: Response, deadline: float) -> str:
        if response.status != 200:
            hint = "the site is busy or limiting requests" if response.status in (429, 503) else "try another result"
            raise ToolError(f"could not read page: HTTP {response.status} from {site}; {hint}")
        content_type = response.headers.get("content-type", "text/html")
        kind = content_type.split(";")[0].strip().lower()
        raw = decode(response.body, content_type)
        if kind in ("text/html", "application/xhtml+xml"):
            try:
                title, text = extract_text(raw, deadline=deadline)
            except ParseTimeout:
                raise ToolError(
                    f"could not read page: it takes longer than {self.deadline:g} s to read; try another result"
                ) from None
        elif kind.startswith("text/"):
            title, text = "", raw
        else:
            shown = kind if _MEDIA_TYPE.fullmatch(kind) else "of an unusual type" if kind else "of no stated type"
            raise ToolError(f"could not read page: it is {shown}, not HTML or text")
        # Cut before cleaning so the cleaning's cost stays bounded, then cut to the promised size.
        text = sanitize(text, limit=4 * self.max_chars, keep_lines=True)
        if len(text) > self.max_chars:
            text = clip(text, self.max_chars) + "\n[page cut here]"
        title = clip(sanitize(title), 200) or "(no title)"
        url = clip(sanitize(url), 300)
        return f"({UNTRUSTED_NOTE})\nTitle: {title}\nURL: {url}\n\n{text or '(no readable text)'}"


def _site(url: str) -> str:
    return shown_host(urlsplit(url).hostname)  # the guard has parsed it


_default_reader = PageReader()  # cheap: nothing is read or written before the first call
read_page = _default_reader.read_page
read_page_tool = tool(name="read_page", untrusted=True)(read_page)
