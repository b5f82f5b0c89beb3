"""Model hubs: choosing GGUF files from listings, one fetch flow for Hugging Face and ModelScope.

The choice runs on listings in `fixtures/hub_listings.json`; the fetch flow on an injected hub
that records what it was asked; ModelScope's real client (the `modelscope` package) against a
closed port and against a small ModelScope look-alike on 127.0.0.1. Nothing leaves the machine:
the in-process tests refuse any connection that is not to loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from agent.models import hub_modelscope, sources
from agent.models.hub_files import HubSpec, cached, choose, fetch, parse_spec, quant_of
from agent.models.protocol import ModelError

ROOT = Path(__file__).resolve().parents[1]
LISTINGS: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures/hub_listings.json").read_text())


def names(repo: str) -> list[str]:
    return [entry["Path"] for entry in LISTINGS[repo] if entry["Type"] != "tree"]


def chosen(repo: str, spec: str = "") -> list[str]:
    return choose(names(repo), parse_spec(repo + spec))


# ---------------------------------------------------------------------------------------------
# Choosing


def test_a_quantization_is_chosen_as_a_whole_token() -> None:
    assert chosen("Qwen/QwQ-32B-GGUF") == ["qwq-32b-q4_k_m.gguf"]  # Q4_K_M unless told
    assert chosen("Qwen/QwQ-32B-GGUF", ":Q8_0") == chosen("Qwen/QwQ-32B-GGUF", ":q8_0") == ["qwq-32b-q8_0.gguf"]
    assert chosen("Qwen/QwQ-32B-GGUF", ":Q5_0") == ["qwq-32b-q5_0.gguf"]  # not q5_k_m
    with pytest.raises(ModelError, match=r"has no Q4_K GGUF; it has: Q4_K_M, Q5_0, Q5_K_M, Q6_K, Q8_0$"):
        chosen("Qwen/QwQ-32B-GGUF", ":Q4_K")  # a prefix of Q4_K_M is not Q4_K_M


def test_a_named_file_is_taken_as_is_or_refused_with_the_files_there() -> None:
    assert chosen("Qwen/QwQ-32B-GGUF", "/qwq-32b-q6_k.gguf") == ["qwq-32b-q6_k.gguf"]
    with pytest.raises(ModelError, match=r"has no file qwq-32b-q3_k_m.gguf; its GGUF files: qwq-32b-q4_k_m.gguf, "):
        chosen("Qwen/QwQ-32B-GGUF", "/qwq-32b-q3_k_m.gguf")


def test_a_split_gguf_comes_whole_first_part_first() -> None:
    parts = [f"split-72b-q4_k_m-0000{k}-of-00003.gguf" for k in (1, 2, 3)]
    assert chosen("example/Split-72B-GGUF") == parts
    assert chosen("example/Split-72B-GGUF", "/split-72b-q4_k_m-00002-of-00003.gguf") == parts
    assert chosen("example/Split-72B-GGUF", ":Q4_K_S") == [
        "split-72b-q4_k_s-00001-of-00002.gguf",
        "split-72b-q4_k_s-00002-of-00002.gguf",
    ]
    assert chosen("example/Split-72B-GGUF", ":Q8_0") == [
        "Q8_0/split-72b-q8_0-00001-of-00002.gguf",  # in a folder, as some repositories keep them
        "Q8_0/split-72b-q8_0-00002-of-00002.gguf",
    ]
    with pytest.raises(ModelError, match=r"split-72b-q6_k is split in 2 parts, 1 missing"):
        chosen("example/Split-72B-GGUF", ":Q6_K")


def test_projectors_are_no_model_and_two_candidates_are_not_guessed_between() -> None:
    assert chosen("example/Vision-7B-GGUF", ":F16") == ["vision-7b-f16.gguf"]  # not mmproj-vision-7b-f16
    assert chosen("example/Vision-7B-GGUF", ":IQ4_XS") == ["vision-7b-iq4_xs.gguf"]
    with pytest.raises(ModelError, match=r"several Q8_0 GGUFs .*; name one as example/Vision-7B-GGUF/FILE.gguf"):
        chosen("example/Vision-7B-GGUF", ":Q8_0")


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("qwq-32b-q4_k_m.gguf", "Q4_K_M"),
        ("Qwen_QwQ-32B-IQ4_XS.gguf", "IQ4_XS"),
        ("Q8_0/split-72b-q8_0-00001-of-00002.gguf", "Q8_0"),
        ("model-bf16.gguf", "BF16"),
        ("qwen2.5-7b-instruct-q4_0.gguf", "Q4_0"),
        ("model.gguf", None),
    ],
)
def test_quantization_of_a_file_name(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


def test_specs_are_parsed_or_refused_in_one_line() -> None:
    assert parse_spec("Qwen/QwQ-32B-GGUF") == HubSpec("Qwen/QwQ-32B-GGUF")
    assert parse_spec("Qwen/QwQ-32B-GGUF:Q8_0") == HubSpec("Qwen/QwQ-32B-GGUF", quant="Q8_0")
    assert parse_spec("o/r/Q8_0/x-q8_0.gguf") == HubSpec("o/r", file="Q8_0/x-q8_0.gguf")
    for bad in ("Qwen", "Qwen/QwQ-32B-GGUF/README.md", "a/b:c:d", "o/r.gguf", "o/r/../x.gguf/"):
        with pytest.raises(ModelError, match="not a model on a hub") as info:
            parse_spec(bad)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# The fetch flow, on a hub that records what it is asked


class RecordedHub:
    """A hub with a recorded listing and cache; `down` makes its probe fail as an offline machine's does."""

    name = "Test Hub"
    fix = "do the thing"

    def __init__(self, listing: Sequence[str], cache: dict[str, Path] | None = None, down: bool = False) -> None:
        self.listing, self.cache, self.down = list(listing), dict(cache or {}), down
        self.asked: list[str] = []

    def cached_files(self, repo: str) -> dict[str, Path]:
        self.asked.append("cache")
        return self.cache

    def probe(self) -> None:
        self.asked.append("probe")
        if self.down:
            raise OSError(101, "Network is unreachable")

    def list_files(self, repo: str) -> list[str]:
        self.asked.append("list")
        return self.listing

    def download(self, repo: str, names: Sequence[str]) -> list[Path]:
        self.asked.append("download " + " ".join(names))
        self.cache.update({n: Path("/cache") / n for n in names})
        return [Path("/cache") / n for n in names]


def test_files_in_the_cache_are_used_without_asking_the_hub() -> None:
    hub = RecordedHub(names("Qwen/QwQ-32B-GGUF"), {"qwq-32b-q8_0.gguf": Path("/c/q8.gguf")}, down=True)
    assert fetch("Qwen/QwQ-32B-GGUF:Q8_0", hub) == Path("/c/q8.gguf")
    assert hub.asked == ["cache"]


def test_a_missing_file_is_listed_then_downloaded_and_found_in_the_cache_next_time() -> None:
    hub = RecordedHub(names("example/Split-72B-GGUF"))
    first = fetch("example/Split-72B-GGUF", hub)
    assert first == Path("/cache/split-72b-q4_k_m-00001-of-00003.gguf")
    assert hub.asked == ["cache", "probe", "list", "download " + " ".join(chosen("example/Split-72B-GGUF"))]
    hub.asked.clear()
    hub.down = True
    assert fetch("example/Split-72B-GGUF", hub) == first and hub.asked == ["cache"]


def test_a_split_only_partly_cached_is_fetched_again_whole() -> None:
    parts = chosen("example/Split-72B-GGUF")
    hub = RecordedHub(names("example/Split-72B-GGUF"), {parts[0]: Path("/c/1"), parts[1]: Path("/c/2")})
    fetch("example/Split-72B-GGUF", hub)
    assert hub.asked[-1] == "download " + " ".join(parts)


def test_an_unreachable_hub_fails_at_the_probe_in_one_line_saying_what_to_do() -> None:
    hub = RecordedHub(names("Qwen/QwQ-32B-GGUF"), down=True)
    with pytest.raises(ModelError) as info:
        fetch("Qwen/QwQ-32B-GGUF", hub, label="test:Qwen/QwQ-32B-GGUF")
    assert str(info.value) == (
        "cannot download test:Qwen/QwQ-32B-GGUF from Test Hub ([Errno 101] Network is unreachable); do the thing"
    )
    assert hub.asked == ["cache", "probe"]  # no listing, no download: nothing waits on retries


def test_what_the_repository_lacks_is_said_as_such_not_as_a_network_failure() -> None:
    hub = RecordedHub(names("Qwen/QwQ-32B-GGUF"))
    with pytest.raises(ModelError, match=r"^Qwen/QwQ-32B-GGUF has no Q2_K GGUF; it has: Q4_K_M"):
        fetch("Qwen/QwQ-32B-GGUF:Q2_K", hub)
    assert "download" not in " ".join(hub.asked)
    assert cached("Qwen/QwQ-32B-GGUF:Q2_K", hub) is None


def test_a_quantization_in_the_hugging_face_cache_is_found_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agent.models.hub_huggingface import HuggingFace

    repo = tmp_path / "hub" / "models--Qwen--QwQ-32B-GGUF"  # the cache layout huggingface_hub documents
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "5e1f").write_bytes(b"GGUF")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "qwq-32b-q8_0.gguf").symlink_to(repo / "blobs" / "5e1f")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(HuggingFace, "probe", lambda self: pytest.fail("the hub was asked"))
    assert fetch("Qwen/QwQ-32B-GGUF:Q8_0", HuggingFace()) == snapshot / "qwq-32b-q8_0.gguf"
    assert sources.cached_download("Qwen/QwQ-32B-GGUF") is None  # Q4_K_M is not there


def test_model_specs_go_to_their_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str, str | None]] = []

    def fake_fetch(text: str, hub: Any, *, label: str | None = None) -> Path:
        asked.append((type(hub).__name__, text, label))
        return Path("/x.gguf")

    monkeypatch.setattr(sources, "fetch", fake_fetch)
    monkeypatch.setattr(hub_modelscope.ModelScope, "__init__", lambda self: None)  # the package may be absent
    for spec in ("Qwen/QwQ-32B-GGUF:Q8_0", "modelscope:Qwen/QwQ-32B-GGUF", "modelscope:o/r/sub/x-q8_0.gguf"):
        assert sources.resolve_model_path(spec) == Path("/x.gguf")
    assert asked == [
        ("HuggingFace", "Qwen/QwQ-32B-GGUF:Q8_0", "Qwen/QwQ-32B-GGUF:Q8_0"),
        ("ModelScope", "Qwen/QwQ-32B-GGUF", "modelscope:Qwen/QwQ-32B-GGUF"),
        ("ModelScope", "o/r/sub/x-q8_0.gguf", "modelscope:o/r/sub/x-q8_0.gguf"),
    ]
    assert sources.resolve_model_path("models/modelscope.gguf") == Path("models/modelscope.gguf")


def test_without_the_modelscope_package_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "modelscope", None)  # makes `import modelscope` fail
    with pytest.raises(ModelError, match=r"need the modelscope package: pip install 'qwq-agent\[modelscope\]'"):
        sources.resolve_model_path("modelscope:Qwen/QwQ-32B-GGUF")


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "DEFAULT_ENDPOINT"),
        ({"MODELSCOPE_PREFER_AI_SITE": "true"}, "DEFAULT_INTL_ENDPOINT"),
        ({"MODELSCOPE_DOMAIN": "mirror.example"}, "https://mirror.example"),
        ({"MODELSCOPE_DOMAIN": "mirror.example", "MODELSCOPE_ENDPOINT": "http://127.0.0.1:8/"}, "http://127.0.0.1:8"),
    ],
)
def test_the_probed_endpoint_is_the_one_the_package_goes_to(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    package = pytest.importorskip("modelscope_hub.constants")
    for variable in ("MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN", "MODELSCOPE_PREFER_AI_SITE"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert hub_modelscope.endpoint() == getattr(package, expected, expected)


# ---------------------------------------------------------------------------------------------
# ModelScope's real client


def test_an_unreachable_modelscope_fails_in_one_line_with_what_to_do(tmp_path: Path) -> None:
    pytest.importorskip("modelscope")
    env = os.environ | {  # a closed port on loopback: no traffic leaves the machine
        "MODELSCOPE_ENDPOINT": "http://127.0.0.1:9",
        "MODELSCOPE_CACHE": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    spec = "modelscope:Qwen/QwQ-32B-GGUF:Q8_0"
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "solve", "hi", "--model", spec, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"qwq-agent: error: cannot download {spec} from ModelScope (")
    assert "--model /path/to/file.gguf" in line and "MODELSCOPE_ENDPOINT" in line


class LookAlike(BaseHTTPRequestHandler):
    """The two calls of ModelScope's API the client makes for a model: the file list and a file."""

    files: ClassVar[dict[str, Path]] = {}
    requests: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.requests.append("HEAD " + self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.requests.append("GET " + self.path)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path.endswith("/repo/files"):
            listing = [{"Path": n, "Name": n, "Type": "blob", "Size": p.stat().st_size} for n, p in self.files.items()]
            self._send(json.dumps({"Code": 200, "Success": True, "Data": {"Files": listing}}).encode())
        elif url.path.endswith("/repo") and query.get("FilePath", [""])[0] in self.files:
            self._send(self.files[query["FilePath"][0]].read_bytes())
        else:
            self._send(json.dumps({"Code": 200, "Success": True, "Data": {}}).encode())

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def modelscope_site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ThreadingHTTPServer]:
    """A ModelScope look-alike on 127.0.0.1, the client pointed at it, and no other connection allowed."""
    config = pytest.importorskip("modelscope_hub.config")
    embedded = sources.embedded_model_path()
    LookAlike.files = {"README.md": Path(__file__), "smollm2-135m-instruct-q4_1.gguf": embedded}
    LookAlike.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), LookAlike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    config.set_default_config(None)  # the client reads its settings once per process
    connect, elsewhere = socket.socket.connect, []

    def loopback_only(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            elsewhere.append(address)
            raise OSError(101, "Network is unreachable (refused by the test)")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    yield server
    server.shutdown()
    server.server_close()
    config.set_default_config(None)
    assert elsewhere == []  # the client went nowhere but the look-alike


@pytest.mark.model
def test_modelscope_downloads_into_its_cache_and_doctor_and_reruns_need_no_network(
    modelscope_site: ThreadingHTTPServer, tmp_path: Path
) -> None:
    from agent.workloads import doctor

    spec = "modelscope:test/SmolLM2-GGUF:Q4_1"
    before = doctor.check_model(spec, context_size=512)
    assert (
        before.status == "fail" and before.detail == f"{spec} is not downloaded yet" and f"--model {spec}" in before.fix
    )
    assert LookAlike.requests == []  # doctor only looked in the cache
    path = sources.resolve_model_path(spec)
    assert path.is_relative_to(tmp_path / "cache") and path.name == "smollm2-135m-instruct-q4_1.gguf"
    assert path.read_bytes() == sources.embedded_model_path().read_bytes()
    assert any("FilePath=smollm2-135m-instruct-q4_1.gguf" in r for r in LookAlike.requests)
    assert not any("README.md" in r for r in LookAlike.requests)  # only the chosen file
    modelscope_site.shutdown()  # offline from here on
    modelscope_site.server_close()
    assert sources.resolve_model_path(spec) == path
    after = doctor.check_model(spec, context_size=512)
    assert after.status == "ok" and "SmolLM2" in after.detail and str(path) in after.detail
