"""The transcript of one conversation, kept append-only, and the messages and segments it grows by.

A chat format (`agent.core.formats`) renders `Message`s into `Segment`s so structure and data can
be tokenized differently: structure may contain special tokens, data (user text, observations,
model text) never does. `Transcript` is the token sequence of one conversation; it only grows, so
llama.cpp reuses its KV cache by prefix match.

This module does not render a family's format, talk to a model or parse what one generates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.core.records import Call
from agent.models.chatml import CALL_CLOSE, CALL_OPEN, IM_END, IM_START, THINK_CLOSE, THINK_OPEN, neutralize

__all__ = [
    "CALL_CLOSE", "CALL_OPEN", "IM_END", "IM_START", "THINK_CLOSE", "THINK_OPEN", "Message", "Role", "Segment",
    "Transcript", "neutralize", "tojson",
]  # fmt: skip
"""ChatML's tags are re-exported: older code imports them from here."""

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    """One chat message, in the shape chat templates take."""

    role: Role
    """Who speaks: system, user, assistant, or tool (an observation)."""
    content: str
    """The text; for an assistant, anything before `</think>` is reasoning and is not rendered."""
    tool_calls: tuple[Call, ...] = ()
    """Calls an assistant message makes, rendered after its content."""


@dataclass(frozen=True)
class Segment:
    """A run of transcript text and how it may be tokenized."""

    text: str
    """The text itself."""
    structure: bool
    """True for text we wrote (special tokens allowed); False for data (never special)."""


def tojson(value: Any) -> str:
    """JSON as the chat template's `tojson` filter writes it under transformers and llama.cpp."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Transcript:
    """The tokens of one conversation, grown only at the end.

    `tokenize(text, special)` is the model's tokenizer. Generated tokens are appended as they
    were sampled, never re-tokenized from text, so the prefix the model has already evaluated
    stays byte-for-byte and token-for-token the same.
    """

    tokenize: Callable[[str, bool], list[int]] = field(repr=False)
    tokens: list[int] = field(default_factory=list)
    text: str = ""

    def extend(self, segments: Iterable[Segment]) -> None:
        """Append rendered text, structure with special tokens and data without."""
        for seg in segments:
            self.tokens += self.tokenize(seg.text, seg.structure)
            self.text += seg.text

    def append_generated(self, tokens: Sequence[int], text: str) -> None:
        """Append what the model generated, exactly as generated."""
        self.tokens += tokens
        self.text += text
