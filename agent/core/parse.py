"""Split a model's streamed text into reasoning, answer text and tool calls as it arrives.

`StreamParser.feed` takes text in whatever pieces the tokenizer produced and returns the public
events (`ReasoningText`, `AnswerText`) and the calls as soon as they are certain: a tag split
across pieces is held back until it is complete, text that only looked like the start of a tag
is released. A `CallOpened` event lets the driver switch to constrained decoding the moment
`<tool_call>` appears. Malformed calls become `BadCall` with a message the model can act on.

This module does not decide what to do with a call (see `agent.core.policy`) and knows nothing
of tokens or models.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from agent.core.records import AnswerText, Call, ReasoningText
from agent.models.chatml import CALL_CLOSE, CALL_OPEN, THINK_CLOSE, THINK_OPEN


@dataclass(frozen=True)
class CallOpened:
    """`<tool_call>` was just written; its body follows."""


@dataclass(frozen=True)
class ParsedCall:
    """A complete, well-formed tool call."""

    call: Call
    raw: str


@dataclass(frozen=True)
class BadCall:
    """A tool call that could not be read, with what was wrong."""

    raw: str
    error: str


Parsed = ReasoningText | AnswerText | CallOpened | ParsedCall | BadCall
"""What the parser emits: the public text events as they are settled, and the calls."""

_CALL_SHAPE = 'write <tool_call>\n{"name": <tool name>, "arguments": {<argument>: <value>, ...}}\n</tool_call>'


def parse_call(raw: str) -> ParsedCall | BadCall:
    """Read the JSON body of a `<tool_call>` element."""
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        return BadCall(raw, f"the tool call is not valid JSON ({exc.msg} at char {exc.pos}); {_CALL_SHAPE}")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return BadCall(raw, f'the tool call has no "name"; {_CALL_SHAPE}')
    arguments = body.get("arguments", {})
    if isinstance(arguments, str):  # some models double-encode the arguments object
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    if not isinstance(arguments, dict):
        return BadCall(raw, f'"arguments" must be a JSON object; {_CALL_SHAPE}')
    return ParsedCall(Call(body["name"], arguments), raw)


class StreamParser:
    """Incremental splitter for one assistant turn.

    `thinking` says whether the prompt already opened `<think>`. With `calls=False` (no tools) a
    `<tool_call>` is plain text; with `calls_in_thought=False` it is plain text inside the
    thought (QwQ's template expects calls after it), and with True it is a call there too.
    A chat format (`agent.core.formats`) gives its own tags: `think` and `call` (opener, closer),
    `silent` structure that is dropped, `parse_call` for a call's body, and `call_ends_turn` when
    the closer is an end-of-generation token (the turn's end then closes the call).
    """

    def __init__(
        self,
        thinking: bool,
        *,
        calls: bool = True,
        calls_in_thought: bool = False,
        think: tuple[str, str] = (THINK_OPEN, THINK_CLOSE),
        call: tuple[str, str] = (CALL_OPEN, CALL_CLOSE),
        silent: tuple[str, ...] = (),
        parse_call: Callable[[str], ParsedCall | BadCall | list[ParsedCall | BadCall]] = parse_call,
        call_ends_turn: bool = False,
    ) -> None:
        self.mode = "think" if thinking else "content"
        self.calls = calls
        self.calls_in_thought = calls and calls_in_thought
        (self.think_open, self.think_close), (self.call_open, self.call_close) = think, call
        self.silent, self.parse, self.call_ends_turn = silent, parse_call, call_ends_turn
        self._call_from = "content"  # where a call returns to when it closes
        self.thought_closed = False
        self._pending = ""  # text not yet released: a possible partial tag, or a call body
        self._content_started = False
        self.thought_expected = False
        """The model opens its thought itself (the prompt did not): a forced call waits for it."""
        # Most pieces hold no character a tag could begin with: they are settled without a search.
        self._starts = {mode: {t[:1] for t in self._tags(mode)} for mode in ("think", "content", "call")}

    def _tags(self, mode: str | None = None) -> tuple[str, ...]:
        mode = mode or self.mode
        if mode == "call":
            return (self.call_close,)
        if mode == "think":
            return (self.think_close, self.call_open) if self.calls_in_thought else (self.think_close,)
        opening = (self.think_open,) if self.think_open else ()
        return (*((self.call_open,) if self.calls else ()), *opening, *self.silent)

    def feed(self, text: str) -> list[Parsed]:
        """Take the next piece of generated text; return what it settles."""
        held = len(self._pending)
        self._pending += text
        events: list[Parsed] = []
        if self.mode == "call":  # the closer can only end in the new text
            if self.call_close not in self._pending[max(0, held - len(self.call_close) + 1) :]:
                return events
        elif not held and not any(c in text for c in self._starts[self.mode]):
            self._pending = ""
            self._emit(text, events)
            return events
        while True:
            hits = [(self._pending.find(t), t) for t in self._tags() if t in self._pending]
            if not hits:
                break
            at, tag = min(hits)
            before, self._pending = self._pending[:at], self._pending[at + len(tag) :]
            if self.mode == "call":
                events += _calls(self.parse(before))
                self.mode = self._call_from
            else:
                self._emit(before, events)
                self._switch(tag, events)
        if self.mode != "call":
            keep = _partial_tag_length(self._pending, self._tags())
            self._emit(self._pending[: len(self._pending) - keep], events)
            self._pending = self._pending[len(self._pending) - keep :]
        return events

    def close(self) -> list[Parsed]:
        """End of the turn: release what was held back; an unfinished call is a bad call."""
        events: list[Parsed] = []
        if self.mode == "call" and self.call_ends_turn:
            events += _calls(self.parse(self._pending))
            self.mode = self._call_from
        elif self.mode == "call":
            events.append(BadCall(self._pending, f"the tool call was not closed with {self.call_close}"))
        else:
            self._emit(self._pending, events)
        self._pending = ""
        return events

    def _emit(self, text: str, events: list[Parsed]) -> None:
        if self.mode == "think":
            if text:
                events.append(ReasoningText(text))
        elif self.mode == "content":
            if not self._content_started:
                text = text.lstrip("\n")  # as the template does after </think>
                self._content_started = bool(text)
            if text:
                events.append(AnswerText(text))

    def _switch(self, tag: str, events: list[Parsed]) -> None:
        if self.mode == "think" and tag == self.think_close:
            self.mode, self.thought_closed = "content", True
        elif tag in self.silent:
            pass
        elif tag == self.think_open:
            self.mode = "think"
        elif tag == self.call_open:
            self._call_from, self.mode = self.mode, "call"
            events.append(CallOpened())

    def reopen_thought(self) -> None:
        """Go back into the thought, as if its closing tag had not been written (budget forcing)."""
        self.mode, self.thought_closed, self._pending, self._content_started = "think", False, "", False


def _calls(read: ParsedCall | BadCall | list[ParsedCall | BadCall]) -> list[ParsedCall | BadCall]:
    """One call body may hold several calls (DeepSeek's blocks)."""
    return read if isinstance(read, list) else [read]


def _partial_tag_length(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that could be the start of one of `tags`."""
    for n in range(min(len(text), max(map(len, tags)) - 1), 0, -1):
        if any(t.startswith(text[-n:]) for t in tags):
            return n
    return 0
