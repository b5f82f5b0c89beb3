"""QwQ's ChatML + Hermes-tools transcript, rendered as its chat template does, kept append-only.

`render` turns messages into the exact text QwQ-32B's chat template produces (a golden test holds
it to that), split into `Segment`s so structure and data can be tokenized differently: structure
may contain special tokens, data (user text, observations, model text) never does. `Transcript`
is the token sequence of one conversation; it only grows, so llama.cpp reuses its KV cache by
prefix match. Tool output is defused with `neutralize` (`agent.models.chatml`) before it enters;
our own observations (an unclosed call, a repetition) enter as we wrote them.

This module does not talk to a model or parse what one generates (see `agent.parse`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.core.records import Call
from agent.models.chatml import (
    CALL_CLOSE,
    CALL_OPEN,
    IM_END,
    IM_START,
    THINK_CLOSE,
    THINK_OPEN,
    neutralize,
)

Role = Literal["system", "user", "assistant", "tool"]


TOOLS_PREAMBLE = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
    '"arguments": <args-json-object>}\n</tool_call>' + IM_END + "\n"
)


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


def render(
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]] = (),
    *,
    generation_prompt: str | None = None,
) -> list[Segment]:
    """Render messages exactly as QwQ-32B's chat template does.

    `generation_prompt` is appended last: `assistant_prompt(thinking)` for a model about to speak.
    """
    out: list[Segment] = []

    def s(text: str) -> None:
        out.append(Segment(text, True))

    def d(text: str) -> None:
        if text:
            out.append(Segment(text, False))

    system = messages[0].content if messages and messages[0].role == "system" else None
    if tools:
        s(IM_START + "system\n")
        d(system or "")
        s(TOOLS_PREAMBLE + "".join("\n" + tojson(t) for t in tools) + TOOLS_POSTAMBLE)
    elif system is not None:
        s(IM_START + "system\n")
        d(system)
        s(IM_END + "\n")

    for i, m in enumerate(messages):
        if m.role == "user" or (m.role == "system" and i > 0):
            s(f"{IM_START}{m.role}\n")
            d(m.content)
            s(IM_END + "\n")
        elif m.role == "assistant":
            content = m.content.split(THINK_CLOSE)[-1].lstrip("\n")
            s(IM_START + "assistant")
            if m.content or not m.tool_calls:
                s("\n")
                d(content)
            for call in m.tool_calls:
                s(f'\n{CALL_OPEN}\n{{"name": "')
                d(call.name)
                s('", "arguments": ')
                d(tojson(call.arguments))
                s("}\n" + CALL_CLOSE)
            s(IM_END + "\n")
        elif m.role == "tool":
            first = i == 0 or messages[i - 1].role != "tool"
            last = i == len(messages) - 1 or messages[i + 1].role != "tool"
            out.extend(observation(m.content, open_turn=first, close_turn=last))
    if generation_prompt is not None:
        s(generation_prompt)
    return out


def assistant_prompt(thinking: bool) -> str:
    """What opens an assistant turn: QwQ's template also opens the thought."""
    return f"{IM_START}assistant\n" + (f"{THINK_OPEN}\n" if thinking else "")


def observation(text: str, *, open_turn: bool = True, close_turn: bool = True, ours: bool = False) -> list[Segment]:
    """A tool result as the template renders it: a `<tool_response>` inside a user turn.

    The text is outside text, neutralized, unless it is `ours` (written by the agent about a call).
    """
    return [
        Segment((IM_START + "user" if open_turn else "") + "\n<tool_response>\n", True),
        Segment(text if ours else neutralize(text), ours),
        Segment("\n</tool_response>" + (IM_END + "\n" if close_turn else ""), True),
    ]


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
