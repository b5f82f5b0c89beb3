"""What the agent needs of a language model: the `Model` protocol and the records it streams.

A `Model` tokenizes text and continues a token prompt, streaming `Piece`s, optionally under a
GBNF grammar; its `Generation` reports how much of the prompt it reused from its cache and how
much it had to evaluate. `Sampling` says how tokens are drawn. A model may also have `cancel()`,
which ends its generations under way within a token (Ctrl-C calls it from a signal handler), and
`preamble(tokens)`, told the prompt prefix every episode opens with, which it may keep warm.
`QUOTE` holds the text the calls being generated are likely to copy.

This module holds no implementation (see `agent.models.llama_cpp`, `agent.models.openai`,
`agent.models.scripted`) and knows nothing of chat formats, tools or the agent loop.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable


class ModelError(Exception):
    """The model could not be found, fetched or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn."""

    temperature: float = 0.6
    """Softmax temperature; QwQ's card: 0.6 (greedy decoding makes it loop)."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    top_k: int = 40
    """Candidates kept before top-p; QwQ's card: 20 to 40."""
    min_p: float = 0.0
    """Minimum probability relative to the best token."""
    repeat_penalty: float = 1.0
    """1.0 is off, as QwQ's card asks."""


REASONING_SAMPLING = Sampling()
"""QwQ-32B's recommended sampling, the default for reasoning models."""
INSTRUCT_SAMPLING = Sampling(temperature=0.2, top_p=0.9, top_k=40, min_p=0.05)
"""A cooler default for small instruct models, which drift at QwQ's temperature."""


QUOTE: contextvars.ContextVar[str] = contextvars.ContextVar("quote", default="")
"""What the calls being generated are likely to copy (the episode's question), set while the agent
calls `generate`. A model that draws its own tokens may favour copying it inside a call (see
`agent.models.copying`); any other model ignores it. A context variable rather than an argument
of `generate`, so that models written for the protocol before it keep working."""


def default_sampling(thinking: bool) -> Sampling:
    """QwQ's recommendation for a reasoning model, the cooler one for an instruct model."""
    return REASONING_SAMPLING if thinking else INSTRUCT_SAMPLING


class Piece(NamedTuple):
    """One generated token (a tuple: one is made per token, and a frozen dataclass costs 3x)."""

    token: int
    """The token id, kept so the transcript never re-tokenizes generated text."""
    text: str
    """Its text; empty while a multi-byte character is incomplete, or for control tokens."""
    end: bool = False
    """True for an end-of-generation token (`<|im_end|>` in ChatML)."""


@dataclass
class Generation:
    """A continuation under way: its pieces, and what its prompt cost."""

    reused: int
    """Prompt tokens taken from the KV cache (known once the first piece is out)."""
    evaluated: int
    """Prompt tokens the model had to evaluate (likewise)."""
    pieces: Iterator[Piece] = field(repr=False)
    saved_cache: bool | None = None
    """Whether the reused tokens came from a prompt cache saved earlier (a warm start); None: the
    model does not say."""
    on_prompt: Callable[[Generation], None] | None = field(default=None, repr=False)
    """Set by the caller: called (by `prompt_known`) once `reused` and `evaluated` are known,
    before the prompt is read, so a status line can say what the wait is for."""

    def __iter__(self) -> Iterator[Piece]:
        return self.pieces

    def prompt_known(self) -> None:
        """A model calls this when it knows `reused` and `evaluated` and starts reading the prompt."""
        if self.on_prompt is not None:
            self.on_prompt(self)

    def close(self) -> None:
        """Stop early and free the model for other callers."""
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()


@runtime_checkable
class Model(Protocol):
    """What the agent needs of a language model."""

    name: str
    """A short name for logs and results."""
    thinking: bool
    """Whether the model reasons inside `<think>` before it answers (as QwQ does)."""
    context_size: int
    """Tokens the context holds: prompt and generation together."""
    sampling: Sampling
    """The sampling it generates with."""
    chat_template: str
    """Its chat template (Jinja), or "" when unknown; the agent reads from it where tool calls go."""
    seed: int | None
    """The sampling seed; None when each generation draws its own."""
    parallel: bool
    """Whether it serves several episodes at once (a server does; one in-process model does not)."""

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Tokens of `text`; special tokens such as `<|im_end|>` are parsed only if `special`."""
        ...

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Continue `prompt`, at most `max_tokens` tokens, stopping after an end token."""
        ...

    def reseed(self, seed: int) -> None:
        """Sample with another seed from now on (independent samples of one question).

        A `parallel` model keeps the seed of each context (`ContextSeed`): samples run at once,
        each in a thread of its own that reseeds it.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Facts about the model for traces, `doctor` and `/model`: at least name and context_size."""
        ...


class ContextSeed:
    """A sampling seed that `set` gives the calling context (and the threads LangGraph starts from
    it) above all, and every other context from then on: samples running at once keep theirs."""

    def __init__(self, seed: int | None) -> None:
        self.default = seed
        self._here: contextvars.ContextVar[int | None] = contextvars.ContextVar(f"seed{id(self)}", default=None)

    def set(self, seed: int) -> None:
        self.default = seed
        self._here.set(seed)

    def get(self) -> int | None:
        here = self._here.get()
        return self.default if here is None else here


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two sequences share from the start."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
