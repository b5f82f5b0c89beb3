"""The interface every chat format implements: `ChatFormat`, and the helpers the families share.

A chat format renders messages as its family's template does, split into `Segment`s (structure
may hold special tokens, data never does); says what opens an assistant turn, what closes one,
and how a tool result is shown; builds the `StreamParser` that reads what the family writes
(its thought tags, its call opener and closer, its call syntax) and the grammar for a call body,
switched on at the opener. Each family's structure tokens are neutralized in outside text.

The defaults here are QwQ's ChatML + Hermes; a family overrides what differs. This module does
not pick a family (see `agent.core.formats`) and runs no model.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from agent.core.grammar import answer_grammar, tool_call_grammar
from agent.core.parse import BadCall, ParsedCall, StreamParser
from agent.core.records import Call
from agent.core.transcript import Message, Segment, tojson
from agent.models.chatml import CALL_CLOSE, CALL_OPEN, IM_END, IM_START, THINK_CLOSE, THINK_OPEN, neutralize

Tools = Sequence[dict[str, Any]]


class Out:
    """Collects segments: `s` for structure we write, `d` for data (never special tokens)."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []

    def s(self, text: str) -> None:
        if text:
            self.segments.append(Segment(text, True))

    def d(self, text: str) -> None:
        if text:
            self.segments.append(Segment(text, False))


class ChatFormat:
    """One family's chat format. Subclasses set the tags and override what their template does."""

    name = "qwq"
    think_open, think_close = THINK_OPEN, THINK_CLOSE
    call_open, call_close = CALL_OPEN, CALL_CLOSE
    end_of_turn = IM_END + "\n"
    """What follows a generated assistant turn (its end token is not part of what it wrote)."""
    silent: tuple[str, ...] = ()
    """Structure the model writes that is neither thought nor answer (harmony's channel headers)."""
    call_ends_turn = False
    """The call's closer is an end-of-generation token: the end of the turn closes the call."""
    call_shape = 'write <tool_call>\n{"name": <tool name>, "arguments": {<argument>: <value>, ...}}\n</tool_call>'
    structure = re.compile(r"(?!)")
    """This family's structure tags beyond ChatML's and Hermes', neutralized in data."""

    # -- rendering -------------------------------------------------------------------------
    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        """Render messages exactly as the family's template does; `generation_prompt` goes last.

        Messages that open with a system message start a conversation (with `tools`, listed as
        the template lists them); others continue one (a follow-up question, a nudge).

        `thinking`: the template's thinking switch (`enable_thinking`), for those that have one.
        """
        raise NotImplementedError

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        """What opens the assistant turn after `text`, and whether it opened the thought.

        `answer_now`: the thought is closed for the model (a final answer is forced).
        """
        raise NotImplementedError

    def may_open_thought(self, thinking: bool) -> bool:
        """Whether the model opens its thought itself (the prompt did not): a forced call waits for it."""
        return False

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        """A tool result as the template renders it (`name`: the tool that returned it)."""
        raise NotImplementedError

    def result(self, text: str, ours: bool, encode: Callable[[str], str] = str) -> Segment:
        """A result's text: outside text neutralized, as data; `ours` (the agent's own words about a
        call) as written. `encode` is how the template writes it (gpt-oss and Llama: as JSON)."""
        return Segment(encode(text), True) if ours else Segment(encode(self.neutralize(text)), False)

    def end(self, called: bool) -> str:
        """What follows a generated turn; `called`: it ended in a tool call."""
        return self.end_of_turn

    def opens_observations(self, text: str) -> bool:
        """Whether a tool result after `text` is the first of its step."""
        return text.endswith(self.end_of_turn)

    def close_text(self, text: str) -> str:
        """The budget's closing words (written with `</think>`) in this family's tags."""
        return text.replace(THINK_CLOSE, self.think_close)

    def neutralize(self, text: str) -> str:
        """Defuse this family's structure (and ChatML's) in untrusted text."""
        # `<` becomes `&lt;`, `[` of a bracket tag (`[INST]`) `&#91;`: readable, no longer a token.
        return self.structure.sub(lambda m: ("&lt;" if m[0][0] == "<" else "&#91;") + m[0][1:], neutralize(text))

    # -- reading ---------------------------------------------------------------------------
    def parser(self, tools: Tools, *, thinking: bool, calls: bool, calls_in_thought: bool) -> StreamParser:
        """A parser for one assistant turn of this family."""
        return StreamParser(
            thinking,
            calls=calls,
            calls_in_thought=calls_in_thought,
            think=(self.think_open, self.think_close),
            call=(self.call_open, self.call_close),
            silent=self.silent,
            parse_call=lambda raw: self.parse_call(raw, tools),
            call_ends_turn=self.call_ends_turn,
        )

    def parse_call(self, raw: str, tools: Tools) -> ParsedCall | BadCall | list[ParsedCall | BadCall]:
        """Read the body of one call (what came between opener and closer); a body may hold several."""
        return json_call(raw, "arguments", self.call_shape)

    def grammar(self, tools: Tools, *, opened: bool) -> str | None:
        """GBNF for the call body once the opener is written (`opened`), or with it (a forced call)."""
        return tool_call_grammar(tools, opened=opened)

    def answer_grammar(self) -> str | None:
        """GBNF for an answer that opens no call and writes no tag, or None where the family's call
        opener is no tag (then a call in the final turn only ends it)."""
        return answer_grammar() if self.call_open.startswith("<") else None


def json_call(raw: str, key: str, shape: str) -> ParsedCall | BadCall:
    """A JSON `{"name": ..., key: {...}}` call body."""
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        return BadCall(raw, f"the tool call is not valid JSON ({exc.msg} at char {exc.pos}); {shape}")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return BadCall(raw, f'the tool call has no "name"; {shape}')
    return named_call(body["name"], body.get(key, body.get("arguments", {})), raw, shape)


def named_call(name: str, arguments: Any, raw: str, shape: str) -> ParsedCall | BadCall:
    """A call of `name` with `arguments` that must be (or encode) a JSON object."""
    if isinstance(arguments, str):  # some models double-encode the arguments object
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    if not isinstance(arguments, dict):
        return BadCall(raw, f"the arguments must be a JSON object; {shape}")
    return ParsedCall(Call(name, arguments), raw)


def json_rules(tools: Tools) -> tuple[list[str], list[str]]:
    """GBNF rules for each tool's arguments: (the rule of each, in tool order; all rules).

    Taken from the Hermes call grammar (`agent.core.grammar`), so every family's arguments are
    generated under the same rules, bounds included; only the wrapper around them differs.
    """
    rules = tool_call_grammar(tools, opened=True).splitlines()[1:]  # all but its root
    names = []
    for i in range(len(tools)):
        kv = ("call" if len(tools) == 1 else f"call-{i}") + "-arguments-kv ::= "
        line = next(r for r in rules if r.startswith(kv))
        names.append(line.split()[-1])  # the arguments' rule ends its key-value rule
    return names, rules


def gbnf(text: str) -> str:
    """A GBNF string literal."""
    return json.dumps(text, ensure_ascii=False)


__all__ = ["IM_START", "ChatFormat", "Out", "Tools", "gbnf", "json_call", "json_rules", "named_call", "tojson"]
