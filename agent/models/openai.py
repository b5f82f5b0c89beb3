"""A `Model` served over HTTP by an OpenAI-compatible server: llama.cpp's, llama-cpp-python's, vLLM.

The agent keeps its own ChatML transcript, so this backend uses the raw text endpoint
(`POST /v1/completions`, streamed), never chat completions: the server continues exactly the
prompt the agent built, the model's reasoning arrives inline inside `<think>` (a
`reasoning_content` field, should a server send one, is kept as thought text too), and tool-call
bodies are generated under the agent's GBNF grammar, sent as `grammar` (llama.cpp and
llama-cpp-python; pass `grammar_field="guided_grammar"` for vLLM, or None for servers without
grammars, where a malformed call still goes back to the model as an observation).

Tokens are local stand-ins: a token id here packs up to 7 bytes of text (a word, a number, a
streamed piece), so ids are stable across processes and a checkpointed session resumes on any
client, and the prompt sent is the transcript's text. Append-only still holds where it pays:
every request's prompt extends the previous one's text, so the server's prefix cache
(llama.cpp's `cache_prompt`, vLLM's prefix caching) evaluates only what is new. Token counts for
budgets and the context check are approximate (a stand-in is about one real token); `reused` and
`evaluated` are counted by prefix match on stand-ins, as llama.cpp matches its one cache.

This module does not start servers nor render chat formats; `agent.models.served` sends the
requests (and retries one that failed before its first piece, where that is safe).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

from agent.models.chatml import IM_END, neutralize
from agent.models.families import default_thinking, family, family_sampling
from agent.models.protocol import (
    ContextSeed,
    Generation,
    ModelError,
    Piece,
    Sampling,
    common_prefix,
)
from agent.models.served import Connection

END_TOKEN = 0
"""The id of the end piece; no stand-in packs to 0."""

# Word-like runs, as a BPE pre-tokenizer splits them; each becomes one stand-in token or a few.
_WORDS = re.compile(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\w\s]+|\s+|.", re.DOTALL)


def pack(text: str) -> list[int]:
    """Stand-in tokens of `text`: each the UTF-8 of up to 7 bytes behind a 0x01 marker byte."""
    ids: list[int] = []
    for word in _WORDS.findall(text):
        chunk = b""
        for char in word:
            encoded = char.encode()
            if len(chunk) + len(encoded) > 7:
                ids.append(int.from_bytes(b"\x01" + chunk))
                chunk = b""
            chunk += encoded
        if chunk:
            ids.append(int.from_bytes(b"\x01" + chunk))
    return ids


def stand_in(piece: str) -> int:
    """The one stand-in token of a streamed piece of at most 7 bytes (`split_pieces` cuts them so)."""
    data = piece.encode()
    if not 0 < len(data) <= 7:
        raise ValueError(f"a stand-in holds 1 to 7 bytes, not {len(data)}")
    return int.from_bytes(b"\x01" + data)


def unpack(ids: Sequence[int]) -> str:
    """The text behind stand-in tokens."""
    data = b"".join(i.to_bytes((i.bit_length() + 7) // 8)[1:] for i in ids if i != END_TOKEN)
    return data.decode("utf-8", errors="replace")


class OpenAIModel:
    """A model behind an OpenAI-compatible `/v1/completions` endpoint."""

    parallel = True
    """A server batches requests: several episodes may run at once."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model_name: str | None = None,
        context_size: int = 8192,
        thinking: bool | None = None,
        sampling: Sampling | None = None,
        seed: int | None = None,
        grammar_field: str | None = "grammar",
        timeout: float = 600.0,
    ) -> None:
        """Connect to a server (and ask it for its model's name when `model_name` is None).

        Args:
            base_url: The API root, such as `http://127.0.0.1:8080/v1`.
            api_key: Sent as a bearer token; `$OPENAI_API_KEY` when None.
            model_name: The model to request; the server's first listed model when None.
            context_size: The server's context length (budgets and the context check use it).
            thinking: Whether the model reasons in `<think>` (QwQ, R1 distills); when None, read
                from the chat template the server reports at `/props` (llama.cpp), else False.
            sampling: Sampling to request; QwQ's recommendation for reasoning models, a cooler
                one for instruct models.
            seed: Sampling seed sent with each request, for reproducible runs.
            grammar_field: The request field that takes a GBNF grammar: "grammar" (llama.cpp,
                llama-cpp-python), "guided_grammar" (vLLM), or None to send none.
            timeout: Seconds to wait for the next streamed piece (a large model's prefill on a
                CPU can take minutes before the first one).
        """
        self.connection = Connection(base_url, api_key=api_key, timeout=timeout)
        self.base_url = self.connection.base_url
        self.grammar_field = grammar_field
        self.seed = seed
        """The sampling seed sent with each request; None: the server draws its own."""
        self._seeds = ContextSeed(seed)  # the one in use: `reseed` changes it for independent samples
        self.name = model_name or self._first_model()
        self.context_size = context_size
        props = self.connection.optional(f"{self.connection.root}/props")
        template = props.get("chat_template", "")
        self.chat_template = template if isinstance(template, str) else ""
        """The chat template the server reports (llama.cpp's `/props`), or "" when it reports none."""
        self.family = family(self.chat_template)
        self.thinking = default_thinking(self.chat_template) if thinking is None else thinking
        self.sampling = sampling or family_sampling(self.family, self.thinking)
        self._lock = threading.Lock()
        self._cached: list[int] = []  # what the server last evaluated, as far as we can tell

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Stand-in tokens; without `special`, structure tags are defused first.

        The server tokenizes the prompt text with special tokens parsed, so data text must not
        carry `<|im_end|>` and the like (the transcript defuses tool output already; this also
        covers any other caller).
        """
        return pack(text if special else neutralize(text))

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Stream a continuation of `prompt` from the server; closing the generation aborts the request."""
        prompt = list(prompt)
        with self._lock:
            reused = common_prefix(self._cached, prompt)
            self._cached = list(prompt)
        body: dict[str, Any] = {
            "model": self.name,
            "prompt": unpack(prompt),
            "max_tokens": max(1, min(max_tokens, self.context_size - len(prompt))),
            "stream": True,
            "stop": [IM_END],
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "top_k": self.sampling.top_k,
            "min_p": self.sampling.min_p,
            "repeat_penalty": self.sampling.repeat_penalty,
        }
        if (seed := self._seeds.get()) is not None:
            body["seed"] = seed
        if grammar and self.grammar_field:
            body[self.grammar_field] = grammar
        return Generation(reused, len(prompt) - reused, self._pieces(body, max_tokens))

    def _pieces(self, body: dict[str, Any], max_tokens: int) -> Iterator[Piece]:
        events = self.connection.events(f"{self.base_url}/completions", body)
        with closing(events):  # closing the generation closes the stream at once: the server stops
            yield from self._read(events, max_tokens)

    def _read(self, events: Iterator[dict[str, Any]], max_tokens: int) -> Iterator[Piece]:
        count = 0
        thought = False  # a reasoning_content stream is open
        for event in events:
            choices = event.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                raise ModelError(f"the model server at {self.base_url} sent an event without choices: {event}"[:300])
            choice = choices[0]
            reasoning = choice.get("reasoning_content") or choice.get("reasoning") or ""
            text = choice.get("text") or ""
            if text and thought:  # the server split the thought off: close it where it ended
                text, thought = "\n</think>\n\n" + text, False
            thought = thought or bool(reasoning)
            for piece_text in split_pieces(reasoning + text):
                count += 1
                yield Piece(stand_in(piece_text), piece_text)
            if choice.get("finish_reason") == "stop":
                yield Piece(END_TOKEN, "", end=True)
                return
            if choice.get("finish_reason") or count >= max_tokens:
                return
        raise ModelError(f"the model server at {self.base_url} ended the stream before the answer did")

    def _first_model(self) -> str:
        models = self.connection.get(f"{self.base_url}/models")
        models = models.get("data") if isinstance(models, dict) else None
        if not models:
            raise ModelError(f"the model server at {self.base_url} lists no model: pass --model-name")
        return str(models[0]["id"])

    def reseed(self, seed: int) -> None:
        """Send another seed from now on (independent samples of one question)."""
        self._seeds.set(seed)

    def describe(self) -> dict[str, Any]:
        """Facts about the served model, for `doctor` and results."""
        return {
            "name": self.name,
            "server": self.base_url,
            "context_size": self.context_size,
            "thinking": self.thinking,
        }

    def close(self) -> None:
        """Close the connections."""
        self.connection.close()


def split_pieces(text: str) -> list[str]:
    """A streamed piece of text cut so each part packs into one stand-in token."""
    parts: list[str] = []
    chunk = ""
    for char in text:
        if len((chunk + char).encode()) > 7:
            parts.append(chunk)
            chunk = ""
        chunk += char
    return [*parts, chunk] if chunk else parts
