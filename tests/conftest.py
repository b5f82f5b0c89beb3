"""Shared fixtures; the shared helpers themselves (tools, scripted agents, a fake server) are in helpers.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from helpers import FakeServer

# The command line checks the network before it offers the web tools by default: tests never
# touch the network, so they (and the commands they start) skip the check and keep the tools.
os.environ["QWQ_NETWORK"] = "on"


@pytest.fixture(autouse=True, scope="session")
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Saved prompt states (and web pages) go to a directory of this run, not the user's cache."""
    kept = os.environ.get("QWQ_CACHE_DIR")
    os.environ["QWQ_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if kept is None:
        os.environ.pop("QWQ_CACHE_DIR", None)
    else:
        os.environ["QWQ_CACHE_DIR"] = kept


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    """`serve(respond, template="")`: a `FakeServer` running on 127.0.0.1 until the test ends."""
    with ExitStack() as stack:

        def start(respond: Callable[[str], str], *, template: str = "") -> FakeServer:
            server = FakeServer(respond, template=template)
            stack.enter_context(server.running())
            return server

        yield start
