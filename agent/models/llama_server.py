"""A `Model` served by llama.cpp's own server (`llama-server`), spoken to in its tokens.

The transcript goes to `POST /completion` as token ids, in the server's own vocabulary (its
`/tokenize`), and each streamed piece comes back with its ids (`return_tokens`), so the agent's
transcript is exactly what the model read and wrote, as with the in-process model. Every
request asks the server to keep its KV cache (`cache_prompt`) and names a slot (`id_slot`): a
conversation goes back to the slot whose cache holds the longest prefix of its prompt, so with
`-np N` up to N episodes each keep their own cache. `reused` and `evaluated` are the server's
own counts (`timings.cache_n`, `timings.prompt_n` on the first piece), not estimates.

This module does not start the server (tests/llama_server.py does, README "Scaling out" says how).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import suppress
from typing import Any

from agent.models.chatml import IM_END
from agent.models.protocol import (
    ContextSeed,
    Generation,
    ModelError,
    Piece,
    Sampling,
    common_prefix,
    default_sampling,
)
from agent.models.served import Connection


def is_llama_server(props: dict[str, Any]) -> bool:
    """Whether a `/props` document is llama.cpp's server's (it counts its slots)."""
    return isinstance(props.get("total_slots"), int) and isinstance(props.get("default_generation_settings"), dict)


class LlamaServerModel:
    """A model behind llama.cpp's `llama-server`, in token mode."""

    parallel = True
    """The server runs one request per slot at once (`-np`)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        context_size: int | None = None,
        thinking: bool | None = None,
        sampling: Sampling | None = None,
        seed: int | None = None,
        timeout: float = 600.0,
        props: dict[str, Any] | None = None,
    ) -> None:
        """Connect to a server and read its model, slots and per-slot context from `/props`.

        Args:
            base_url: The server's root or its `/v1` (both work: `/completion` is beside `/v1`).
            api_key: Sent as a bearer token (`llama-server --api-key`); `$OPENAI_API_KEY` when None.
            context_size: At most this much context; the slot's context when None or larger.
            thinking: Whether the model reasons in `<think>`; from the served chat template when None.
            sampling: Sampling to request; the default for reasoning or instruct models.
            seed: Sampling seed sent with each request.
            timeout: Seconds to wait for the next streamed piece.
            props: The server's `/props`, when the caller already read it.
        """
        self.connection = Connection(base_url, api_key=api_key, timeout=timeout)
        self.base_url = self.connection.root
        props = props if props is not None else self.connection.get(f"{self.base_url}/props")
        if not isinstance(props, dict) or not is_llama_server(props):
            raise ModelError(f"{self.base_url} is not llama.cpp's server (its /props lists no slots)")
        settings = props["default_generation_settings"]
        slot_context = int(settings.get("n_ctx") or 0) or 4096
        self.context_size = min(context_size, slot_context) if context_size else slot_context
        self.slots = int(props["total_slots"])
        path = str(props.get("model_path") or "model")
        self.name = str(props.get("model_alias") or "") or path.rsplit("/", 1)[-1].removesuffix(".gguf")
        template = props.get("chat_template")
        self.chat_template = template if isinstance(template, str) else ""
        self.thinking = "<think>" in self.chat_template if thinking is None else thinking
        self.sampling = sampling or default_sampling(self.thinking)
        self.seed = seed
        self._seeds = ContextSeed(seed)  # the one in use: `reseed` changes it for independent samples
        self._lock = threading.Lock()
        self._slot_tokens: list[list[int]] = [[] for _ in range(self.slots)]  # what each slot last evaluated
        self._busy = [False] * self.slots
        self._tokens: dict[tuple[str, bool], list[int]] = {}  # tokenize cache: the same tags again and again
        self.end_token = self.tokenize(IM_END, True)[0]

    def tokenize(self, text: str, special: bool) -> list[int]:
        """The server's tokens of `text`, without a BOS; special tokens parsed only if `special`."""
        key = (text, special)
        cached = self._tokens.get(key)
        if cached is not None:
            return list(cached)
        answer = self.connection.post(
            f"{self.base_url}/tokenize", {"content": text, "add_special": False, "parse_special": special}
        )
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ModelError(f"the model server at {self.base_url} sent a malformed /tokenize answer")
        if len(text) <= 64:
            self._tokens[key] = tokens
        return list(tokens)

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Stream a continuation of `prompt` in the slot that holds most of it; closing aborts the request."""
        prompt = list(prompt)
        generation = Generation(0, len(prompt), iter(()))
        # A weak reference, as in llama_cpp.py: the generator must not keep its Generation alive.
        generation.pieces = self._pieces(prompt, max_tokens, grammar, weakref.proxy(generation))
        return generation

    def _take_slot(self, prompt: list[int]) -> int:
        """The free slot whose cache shares most with `prompt` (-1: all busy, the server picks)."""
        with self._lock:
            free = [i for i in range(self.slots) if not self._busy[i]]
            if not free:
                return -1
            slot = max(free, key=lambda i: (common_prefix(self._slot_tokens[i], prompt), -len(self._slot_tokens[i])))
            self._busy[slot] = True
            self._slot_tokens[slot] = prompt
            return slot

    def _pieces(self, prompt: list[int], max_tokens: int, grammar: str | None, report: Generation) -> Iterator[Piece]:
        s = self.sampling
        body: dict[str, Any] = {
            "prompt": prompt,
            "n_predict": max(1, min(max_tokens, self.context_size - len(prompt))),
            "stream": True,
            "cache_prompt": True,
            "return_tokens": True,
            "timings_per_token": True,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "min_p": s.min_p,
            "repeat_penalty": s.repeat_penalty,
        }
        if (seed := self._seeds.get()) is not None:
            body["seed"] = seed
        if grammar:
            body["grammar"] = grammar
        slot = self._take_slot(prompt)
        body["id_slot"] = slot
        count, first = 0, True
        written: list[int] = []
        events = self.connection.events(f"{self.base_url}/completion", body)
        try:
            for event in events:
                if first:
                    timings = event.get("timings") or {}
                    if "cache_n" in timings:
                        with suppress(ReferenceError):
                            report.reused = int(timings["cache_n"])
                            report.evaluated = int(timings.get("prompt_n", len(prompt) - report.reused))
                    first = False
                tokens, text = event.get("tokens"), event.get("content", "")
                if not isinstance(tokens, list) or not isinstance(text, str):
                    raise ModelError(f"the model server at {self.base_url} sent a piece without tokens: {event}"[:300])
                for i, token in enumerate(tokens):
                    count += 1
                    written.append(int(token))
                    yield Piece(int(token), text if i == len(tokens) - 1 else "")
                if event.get("stop"):
                    if event.get("stop_type") == "eos":
                        yield Piece(self.end_token, "", end=True)
                    return
                if count >= max_tokens:
                    return
            raise ModelError(f"the model server at {self.base_url} ended the stream before the answer did")
        finally:
            events.close()  # at once, not at garbage collection: the server stops generating for us
            if slot >= 0:
                with self._lock:
                    self._busy[slot] = False
                    self._slot_tokens[slot] = prompt + written

    def reseed(self, seed: int) -> None:
        """Send another seed from now on (independent samples of one question)."""
        self._seeds.set(seed)

    def describe(self) -> dict[str, Any]:
        """Facts about the served model, for `doctor` and results."""
        return {
            "name": self.name,
            "server": self.base_url,
            "api": "tokens",
            "slots": self.slots,
            "context_size": self.context_size,
            "thinking": self.thinking,
        }

    def close(self) -> None:
        """Close the connections."""
        self.connection.close()
