"""llama.cpp's own server for the tests: where `make llama-server` put it, and how to start it on loopback.

The binary is built from the llama.cpp that llama-cpp-python's sdist vendors, into
`~/.cache/qwq-agent/llama-server/VERSION/` (VERSION: the installed llama-cpp-python's), so the
server and the in-process model read the same GGUF the same way. `make test` builds it first;
tests skip, naming the command, only where it is missing.
"""

from __future__ import annotations

import importlib.metadata
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agent.models.sources import embedded_model_path


def binary() -> Path:
    """The server built for the installed llama-cpp-python (it may not exist)."""
    version = importlib.metadata.version("llama-cpp-python")
    return Path.home() / ".cache" / "qwq-agent" / "llama-server" / version / "llama-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(log: Path, *, slots: int = 4, slot_context: int = 4096, extra: tuple[str, ...] = ()) -> Iterator[str]:
    """Serve the embedded SmolLM2 on a free loopback port with `slots` slots; yields the `/v1` URL."""
    path = binary()
    if not path.exists():
        pytest.skip(f"llama-server is not built: run `make llama-server` (expected {path})")
    port = free_port()
    command = [
        str(path), "--model", str(embedded_model_path()), "--host", "127.0.0.1", "--port", str(port),
        "-np", str(slots), "-c", str(slots * slot_context), "-t", "2", "--no-warmup", *extra,
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # /health is 503 while the model loads, 200 once it serves
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "llama-server did not become healthy within 60 s"
            try:
                if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield f"{root}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
