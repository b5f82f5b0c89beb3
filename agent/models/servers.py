"""Model servers by URL: `connect(spec)` picks how to speak to each, `Endpoints` spreads work over several.

A spec is a URL, several joined by commas, or the path of a file with one URL per line (`#`
comments). `api` says how to speak to them: "tokens" (llama.cpp's `/completion` with token ids,
`agent.models.llama_server`), "completions" (`/v1/completions` with text, `agent.models.openai`),
"chat" (`/v1/chat/completions`, `agent.models.openai_chat`), or "auto": tokens where the
server is llama.cpp's (its `/props` counts slots), completions elsewhere.

`Endpoints` sends each request to the server that saw its episode's previous request (a prefix
of its prompt), or to the least busy one for a new episode, so an episode stays on the
server that caches it while a batch spreads. A request a server could not take at all (no
connection, 503 after retries) goes to another, and that server is left out for a while. A
request that failed after its first piece is an error: the episode is never run a second time.

This module starts no server.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from agent.models.llama_server import LlamaServerModel, is_llama_server
from agent.models.openai import OpenAIModel
from agent.models.protocol import Generation, Model, ModelError, Piece
from agent.models.served import Connection, Unavailable

APIS = ("auto", "tokens", "completions", "chat")
"""How to speak to a server (see the module's docstring)."""

RESTING_SECONDS = 30.0
"""How long a server that could not take a request is left out."""
RECENT_PROMPTS = 64
"""Prompts remembered per server, to send an episode's next request where its prefix is cached."""


def urls_of(spec: str) -> list[str]:
    """The URLs of a spec: comma-separated, or a file's lines."""
    if "://" not in spec and Path(spec).expanduser().is_file():
        lines = Path(spec).expanduser().read_text(encoding="utf-8").splitlines()
        urls = [line.split("#", 1)[0].strip() for line in lines]
    else:
        urls = [u.strip() for u in spec.split(",")]
    urls = [u for u in urls if u]
    if not urls:
        raise ModelError(f"no server URL in {spec!r}: give openai:URL[,URL...] or a file of URLs")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ModelError(f"not a server URL: {url!r} (expected http://HOST:PORT/v1)")
    return urls


def connect(spec: str, *, api: str = "auto", **options: Any) -> Model:
    """The model behind the servers of `spec`, one of them or `Endpoints` over several.

    Of several servers, those that cannot be reached now are left out (`ModelError` if all are).

    `options`: api_key, model_name, context_size, thinking, seed, timeout, as the backends take them.
    """
    if api not in APIS:
        raise ModelError(f"unknown API {api!r}: choose one of {', '.join(APIS)}")
    urls = urls_of(spec)
    if len(urls) == 1:
        return connect_one(urls[0], api=api, **options)
    models, errors = [], []
    for url in urls:  # a server down at the start is left out; the others carry the work
        try:
            models.append(connect_one(url, api=api, **options))
        except Unavailable as exc:
            errors.append(str(exc))
    if not models:
        raise ModelError(f"no server of {len(urls)} answers: {errors[0]}")
    return models[0] if len(models) == 1 else Endpoints(models)


def connect_one(url: str, *, api: str = "auto", model_name: str | None = None, **options: Any) -> Model:
    """The model behind one server, spoken to as `api` says."""
    if api in ("auto", "tokens"):
        probe = Connection(url, api_key=options.get("api_key"))
        try:
            props = probe.optional(f"{probe.root}/props")
        finally:
            probe.close()
        if is_llama_server(props):
            return LlamaServerModel(url, props=props, **options)
        if api == "tokens":
            raise ModelError(f"{url} is not llama.cpp's server (no slots at /props): --api tokens needs llama-server")
    if api == "chat":
        from agent.models.openai_chat import OpenAIChatModel

        return OpenAIChatModel(url, model_name=model_name, **options)
    return OpenAIModel(url, model_name=model_name, **options)


class Endpoints:
    """One model served by several servers; an episode keeps to the server that has its prompt, and fails over."""

    parallel = True

    def __init__(self, models: Sequence[Any]) -> None:
        """`models`: one per server, all the same model spoken to the same way."""
        first = models[0]
        for other in models[1:]:
            if type(other) is not type(first) or other.name != first.name:
                raise ModelError(
                    f"the servers do not serve one model the same way: {first.name} ({type(first).__name__}) "
                    f"and {other.name} ({type(other).__name__})"
                )
        self.models = list(models)
        self.name = first.name
        self.thinking = first.thinking
        self.context_size = min(m.context_size for m in models)
        self.sampling = first.sampling
        self.chat_template = first.chat_template
        self.seed = first.seed
        self._lock = threading.Lock()
        self._running = [0] * len(models)  # requests under way on each server
        self._resting = [0.0] * len(models)  # until when (time.monotonic) a server is left out
        self._recent: list[list[list[int]]] = [[] for _ in models]  # the last prompts each server saw

    def _choose(self, prompt: list[int], tried: set[int]) -> int:
        """The awake server that saw this episode's last request, else the least busy one.

        A transcript only grows, so an episode's request extends its previous one: a server that
        saw a prefix of `prompt` as a whole prompt served this episode and caches it. (Episodes
        run in a pool's threads, not one thread each: the prompt is what ties them.)
        """
        with self._lock:
            now = time.monotonic()
            left = [i for i in range(len(self.models)) if i not in tried]
            awake = [i for i in left if self._resting[i] <= now] or left
            seen = {i: max((len(p) for p in self._recent[i] if _extends(prompt, p)), default=0) for i in awake}
            index = min(awake, key=lambda i: (-seen[i], self._running[i]))
            self._running[index] += 1
            if prompt:
                self._recent[index] = [*self._recent[index][-(RECENT_PROMPTS - 1) :], prompt]
            return index

    def _done(self, index: int, *, failed: bool = False) -> None:
        with self._lock:
            self._running[index] -= 1
            if failed:
                self._resting[index] = time.monotonic() + RESTING_SECONDS
                self._recent[index] = []

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Tokens as the least busy server makes them (all serve one model: the same tokens)."""
        tried: set[int] = set()
        while len(tried) < len(self.models):
            index = self._choose([], tried)
            tried.add(index)
            try:
                tokens = list(self.models[index].tokenize(text, special))
            except Unavailable:
                self._done(index, failed=True)
                continue
            self._done(index)
            return tokens
        raise ModelError(f"no server of {len(self.models)} could take the request")

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Continue `prompt` on the server that has it, or on another if it cannot take the request."""
        generation = Generation(0, len(prompt), iter(()))
        generation.pieces = self._pieces(list(prompt), max_tokens, grammar, weakref.proxy(generation))
        return generation

    def _pieces(self, prompt: list[int], max_tokens: int, grammar: str | None, report: Generation) -> Iterator[Piece]:
        tried: set[int] = set()
        error = ""
        while len(tried) < len(self.models):
            index = self._choose(prompt, tried)
            tried.add(index)
            inner = self.models[index].generate(prompt, max_tokens=max_tokens, grammar=grammar)
            started, failed = False, False
            try:
                for piece in inner:
                    if not started:
                        with suppress(ReferenceError):
                            report.reused, report.evaluated = inner.reused, inner.evaluated
                        started = True
                    yield piece
                return
            except Unavailable as exc:
                if started:
                    raise
                error, failed = str(exc), True
            finally:
                inner.close()
                self._done(index, failed=failed)
        raise ModelError(f"no server of {len(self.models)} could take the request: {error}")

    def reseed(self, seed: int) -> None:
        """Every server samples with `seed` from now on."""
        for model in self.models:
            model.reseed(seed)

    def describe(self) -> dict[str, Any]:
        """The first server's facts, and every server's URL."""
        return {**self.models[0].describe(), "servers": [m.base_url for m in self.models]}

    def close(self) -> None:
        """Close every server's connections."""
        for model in self.models:
            model.close()


def _extends(prompt: Sequence[int], earlier: Sequence[int]) -> bool:
    return 0 < len(earlier) <= len(prompt) and prompt[: len(earlier)] == earlier
