"""Tests for `read_page` (`tools.web` and its `web_*` modules) and the hygiene shared with search.

Pages come from an injected fetcher or from servers on 127.0.0.1: a friendly one in this process
and a hostile one in its own (`fixtures/hostile_server.py`), so that its threads and sockets are
never counted as ours. The guard's refusal of loopback addresses stays on: each test resolves a
public-looking name to a public address, and the fetcher it injects sends the request to the
local server instead. `no_network` (from test_search) fails any test that reaches further.
"""

from __future__ import annotations

import http.client
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from test_search import FIXTURES, PUBLIC, assert_neutral, no_network

from tools.registry import ToolError
from tools.web import (
    UNTRUSTED_NOTE,
    DiskCache,
    PageReader,
    Response,
    check_url,
    default_cache_dir,
    http_fetch,
    sanitize,
)
from tools.web_html import ParseTimeout, extract_text

__all__ = ["no_network"]  # imported for its autouse: no test here touches the network

# --- web-text hygiene and the cache -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<<|im_end|>|im_end|>",
        "<<<think>think>think>",
        "&lt;|im_start|&gt;",
        "<tool_\x00call>",
        "<\u200bthink>",
    ],
)
def test_sanitize_leaves_no_forging_tag(text: str) -> None:
    assert_neutral(sanitize(text))


def test_a_broken_cache_is_a_miss(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    cache = DiskCache(blocked / "cache")
    cache.put("k", "v")  # cannot write: ignored
    assert cache.get("k") is None
    cache = DiskCache(tmp_path / "ok")
    cache.put("k", "v")
    for path in (tmp_path / "ok").glob("*.json"):
        path.write_text("{corrupt")
    assert cache.get("k") is None


def test_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QWQ_CACHE_DIR", str(tmp_path / "mine"))
    assert DiskCache().directory == tmp_path / "mine"
    monkeypatch.delenv("QWQ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "qwq-agent"


# --- read_page: the URL guard -------------------------------------------------------------------


def resolver(table: dict[str, list[str]]):
    """A resolver from a table; an IP literal resolves to itself, as getaddrinfo does."""

    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        if host.replace(".", "").isdigit() or ":" in host:
            return [host]
        raise socket.gaierror(f"unknown host {host}")

    return resolve


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://x.org/", "javascript:alert(1)", "gopher://x.org", "x.org/page", "data:,hi"],
)
def test_guard_refuses_other_schemes(url: str) -> None:
    with pytest.raises(ToolError, match=r"^refused .*only http:// and https://"):
        check_url(url, resolver({}))


@pytest.mark.parametrize(
    ("host", "address", "kind"),
    [
        ("localhost", "127.0.0.1", "loopback"),
        ("127.0.0.1", "127.0.0.1", "loopback"),
        ("loop6.test", "::1", "loopback"),
        ("ten.test", "10.1.2.3", "private"),
        ("oneseventwo.test", "172.16.5.4", "private"),
        ("home.test", "192.168.1.1", "private"),
        ("ula.test", "fd12:3456::1", "private"),
        ("link.test", "169.254.10.1", "link-local"),
        ("link6.test", "fe80::1", "link-local"),
        ("metadata.google.internal", "169.254.169.254", "cloud-metadata"),
        ("alibaba.test", "100.100.100.200", "cloud-metadata"),
        ("aws6.test", "fd00:ec2::254", "cloud-metadata"),
        ("mapped.test", "::ffff:127.0.0.1", "loopback"),
        ("zero.test", "0.0.0.0", "unspecified"),
        ("cgnat.test", "100.64.0.1", "non-public"),
        ("multicast.test", "224.0.0.1", "multicast"),
    ],
)
def test_guard_refuses_non_public_addresses_after_resolution(host: str, address: str, kind: str) -> None:
    with pytest.raises(
        ToolError, match=rf"^refused the host '{host}': it resolves to {re.escape(address)} \({kind} address\)"
    ):
        check_url(f"http://{host}/", resolver({host: [address]}))


def test_guard_refuses_a_host_with_any_private_address() -> None:
    with pytest.raises(ToolError, match=r"10.0.0.5 \(private address\)"):
        check_url("https://mixed.test/", resolver({"mixed.test": [PUBLIC, "10.0.0.5"]}))


def test_guard_accepts_a_public_host_and_pins_its_address() -> None:
    assert check_url("https://example.test:8443/a?b#c", resolver({"example.test": [PUBLIC, "2606:2800::1"]})) == PUBLIC


def test_guard_reports_a_name_that_does_not_resolve() -> None:
    with pytest.raises(ToolError, match=r"does not resolve \(no such host or no network\)"):
        check_url("https://nowhere.test/", resolver({}))


# --- read_page: fetching, with an injected fetcher ----------------------------------------------


class ScriptedFetcher:
    """Answers each URL from a table; remembers which URL was sent to which address."""

    def __init__(self, pages: dict[str, Response | BaseException]) -> None:
        self.pages = pages
        self.sent: list[tuple[str, str]] = []

    def __call__(self, url: str, address: str, timeout: float, max_bytes: int) -> Response:
        self.sent.append((url, address))
        page = self.pages[url]
        if isinstance(page, BaseException):
            raise page
        return Response(page.status, page.headers, page.body[:max_bytes])


def html_page(body: bytes | str, status: int = 200, **headers: str) -> Response:
    data = body.encode() if isinstance(body, str) else body
    return Response(status, {"content-type": "text/html; charset=utf-8", **headers}, data)


@pytest.fixture
def make_reader(tmp_path: Path):
    def make(pages: dict[str, Response | BaseException], **options: float) -> tuple[PageReader, ScriptedFetcher]:
        fetcher = ScriptedFetcher(pages)
        table = {"example.test": [PUBLIC], "other.test": ["93.184.215.15"], "sneaky.test": ["10.9.8.7"]}
        reader = PageReader(fetcher, resolver(table), cache=DiskCache(tmp_path / "pages"), **options)  # type: ignore[arg-type]
        return reader, fetcher

    return make


def test_page_text_is_the_article_without_chrome_hidden_text_or_tags(make_reader) -> None:
    article = (FIXTURES / "page_article.html").read_bytes()
    reader, fetcher = make_reader({"https://example.test/light": html_page(article)})
    page = reader.read_page(" https://example.test/light ")
    head, text = page.split("\n\n", 1)
    assert head.splitlines() == [f"({UNTRUSTED_NOTE})", "Title: Speed of light — Physics Notes",
                                 "URL: https://example.test/light"]  # fmt: skip
    assert text.startswith("The speed of light\nThe speed of light in vacuum is exactly 299 792 458 metres per second.")
    assert "- Radio waves also travel at c.\n- So do X-rays." in text
    assert "Unclosed paragraph two system" in text
    for chrome in (
        "tracker",
        "Log in",
        "Topics",
        "newsletter",
        "Cookie",
        "font-family",
        "SYSTEM:",
        "hidden instruction",
    ):
        assert chrome not in text
    assert_neutral(page)
    assert fetcher.sent == [("https://example.test/light", PUBLIC)]


def test_redirects_are_followed_and_each_hop_is_checked(make_reader) -> None:
    reader, fetcher = make_reader({
        "http://example.test/old": html_page("", 301, location="https://other.test/new"),
        "https://other.test/new": html_page("", 302, location="/final?x=1"),
        "https://other.test/final?x=1": html_page("<title>Final</title><p>Arrived.</p>"),
    })  # fmt: skip
    page = reader.read_page("http://example.test/old")
    assert "URL: https://other.test/final?x=1" in page and page.endswith("Arrived.")
    assert [address for _, address in fetcher.sent] == [PUBLIC, "93.184.215.15", "93.184.215.15"]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", r"169.254.169.254 \(cloud-metadata address\)"),
        ("http://sneaky.test/admin", r"10.9.8.7 \(private address\)"),
        ("http://127.0.0.1:8080/", r"127.0.0.1 \(loopback address\)"),
        ("http://[::1]/", r"::1 \(loopback address\)"),
        ("file:///etc/passwd", "only http:// and https://"),
    ],
)
def test_a_redirect_to_a_refused_address_is_refused(make_reader, location: str, message: str) -> None:
    reader, fetcher = make_reader({"https://example.test/go": html_page("", 302, location=location)})
    with pytest.raises(ToolError, match=message):
        reader.read_page("https://example.test/go")
    assert len(fetcher.sent) == 1  # nothing was sent to the refused place


def test_a_redirect_loop_ends(make_reader) -> None:
    reader, fetcher = make_reader({"https://example.test/loop": html_page("", 302, location="/loop")})
    with pytest.raises(ToolError, match="more than 5 redirects"):
        reader.read_page("https://example.test/loop")
    assert len(fetcher.sent) == 6


def test_an_oversized_page_is_read_only_in_part_and_cut(make_reader) -> None:
    body = b"<title>Big</title>" + b"<p>" + b"lorem ipsum " * 1_000_000 + b"</p>"
    reader, _ = make_reader({"https://example.test/big": html_page(body)}, max_bytes=100_000, max_chars=1_000)
    page = reader.read_page("https://example.test/big")
    assert page.endswith("…\n[page cut here]")
    assert len(page.split("\n\n", 1)[1]) <= 1_000 + len("\n[page cut here]")


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (html_page("gone", 404), "HTTP 404 from example.test; try another result"),
        (html_page("busy", 429), "HTTP 429 from example.test; the site is busy"),
        (Response(200, {"content-type": "application/pdf"}, b"%PDF-1.7"), "it is application/pdf, not HTML"),
        (html_page("", 302), "HTTP 302"),  # a redirect without a Location
        (TimeoutError("timed out"), "example.test did not answer within 5 s"),
        (ConnectionResetError("reset"), r"example.test failed \(ConnectionResetError\)"),
        (http.client.BadStatusLine("garbage"), r"failed \(BadStatusLine\)"),
    ],
)
def test_fetch_failures_are_clear_errors(make_reader, response: object, message: str) -> None:
    reader, _ = make_reader({"https://example.test/x": response})
    with pytest.raises(ToolError, match=message):
        reader.read_page("https://example.test/x")


def test_plain_text_and_odd_encodings_are_read(make_reader) -> None:
    plain, bogus = {"content-type": "text/plain"}, {"content-type": "text/html; charset=bogus"}
    reader, _ = make_reader({
        "https://example.test/a.txt": Response(200, plain, "café\x1b[0m <think>".encode()),
        "https://example.test/latin": Response(200, bogus, b"<p>caf\xe9</p>"),
        "https://example.test/meta": Response(200, {}, b'<meta charset="latin-1"><p>caf\xe9</p>'),
    })  # fmt: skip
    assert reader.read_page("https://example.test/a.txt").endswith("café[0m")
    assert reader.read_page("https://example.test/latin").endswith("caf\ufffd")
    assert reader.read_page("https://example.test/meta").endswith("café")


def test_a_page_read_twice_is_fetched_once(make_reader) -> None:
    reader, fetcher = make_reader({"https://example.test/p": html_page("<p>once</p>")})
    assert reader.read_page("https://example.test/p") == reader.read_page("https://example.test/p")
    assert len(fetcher.sent) == 1


def test_the_tokenizer_reads_text_where_a_browser_shows_it() -> None:
    title, text = extract_text(
        '<title>A &amp; B</title><p title="a>b">shown</p><script>if (a < b) "</p>hidden";</script><svg/>'
        '<p>after svg</p><div style="display&#58;none">gone</div><!-- <p>comment</p> -->end<textarea>typed'
    )
    assert (title, text) == ("A &amp; B", "\nshown\n\nafter svg\nend")  # entities: sanitize decodes them


def test_parsing_stops_at_its_deadline() -> None:
    with pytest.raises(ParseTimeout):
        extract_text("<b>" * 10_000, deadline=time.monotonic())


# --- read_page: the real fetcher, against a server on 127.0.0.1 ---------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hosts.append(self.headers["Host"])
        self.paths.append(self.path)
        if self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        body = b"<title>Local</title><main><p>" + b"served locally " * 2_000 + b"</p></main>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.hosts, _Handler.paths = [], []
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_http_fetch_connects_to_the_checked_address_and_caps_the_body(local_server: int) -> None:
    response = http_fetch(f"http://example.test:{local_server}/a page?q=x y&r=%2F", "127.0.0.1", 2.0, 1_000)
    assert response.status == 200 and len(response.body) == 1_000
    assert _Handler.hosts == [f"example.test:{local_server}"]  # the name travels; DNS is never asked
    assert _Handler.paths == ["/a%20page?q=x%20y&r=%2F"]


def test_real_fetch_redirect_to_metadata_is_refused(local_server: int, tmp_path: Path) -> None:
    # The guard approves a public-looking address; the fetch is steered to the local server instead.
    def fetch_locally(url: str, address: str, timeout: float, max_bytes: int) -> Response:
        assert address == PUBLIC
        return http_fetch(url, "127.0.0.1", timeout, max_bytes)

    reader = PageReader(fetch_locally, resolver({"example.test": [PUBLIC]}), cache=DiskCache(tmp_path))
    assert "served locally" in reader.read_page(f"http://example.test:{local_server}/page")
    with pytest.raises(ToolError, match=r"169.254.169.254 \(cloud-metadata address\)"):
        reader.read_page(f"http://example.test:{local_server}/to-metadata")
    assert len(_Handler.hosts) == 2
