"""Mistral's Ministral 3 (and Magistral-style) format: `[INST]…[/INST]`, calls as `[TOOL_CALLS]NAME[ARGS]{…}`.

The tools are listed as JSON in `[AVAILABLE_TOOLS]`; the model thinks in `[THINK]…[/THINK]` when
its system prompt asks (the reasoning models' default prompt does); each call is
`[TOOL_CALLS]NAME[ARGS]{arguments}`, several in a row, and the end of the turn (`</s>`) closes
them; a result is `[TOOL_RESULTS]…[/TOOL_RESULTS]`. The generation prompt is empty: the model
answers right after `[/INST]` or a result.

This module renders, parses and writes the grammar of this family only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from agent.core.formats.base import ChatFormat, Out, Tools, gbnf, json_rules, named_call
from agent.core.parse import BadCall, ParsedCall
from agent.core.transcript import Message, Segment, tojson

BOS, EOS = "<s>", "</s>"
CALLS, ARGS = "[TOOL_CALLS]", "[ARGS]"
_SHAPE = "write [TOOL_CALLS]NAME[ARGS]{arguments}"


class Mistral3(ChatFormat):
    """Ministral 3 (instruct and reasoning)."""

    name = "mistral3"
    think_open, think_close = "[THINK]", "[/THINK]"
    call_open, call_close = CALLS, EOS
    call_ends_turn = True
    end_of_turn = EOS
    call_shape = _SHAPE
    structure = re.compile(r"\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|ARGS|TOOL_RESULTS|THINK|IMG)\]")

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        o = Out()
        rest = list(messages)
        if rest and rest[0].role == "system":
            o.s(BOS + "[SYSTEM_PROMPT]")
            o.d(rest.pop(0).content)
            o.s("[/SYSTEM_PROMPT]")
            if tools:
                o.s("[AVAILABLE_TOOLS]" + tojson(list(tools)) + "[/AVAILABLE_TOOLS]")
        for m in rest:
            if m.role in ("user", "system"):
                o.s("[INST]")
                o.d(m.content)
                o.s("[/INST]")
            elif m.role == "assistant":
                o.d(m.content)
                for call in m.tool_calls:
                    o.s(CALLS)
                    o.d(call.name)
                    o.s(ARGS)
                    o.d(tojson(call.arguments))
                o.s(EOS)
            elif m.role == "tool":
                o.segments += self.observation(m.content)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        if answer_now and thinking:
            return self.think_open + self.think_close, False
        return "", False

    def may_open_thought(self, thinking: bool) -> bool:
        return thinking

    def opens_observations(self, text: str) -> bool:
        return True

    def close_text(self, text: str) -> str:
        return text.replace("</think>\n\n", self.think_close)

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [
            Segment("[TOOL_RESULTS]", True),
            self.result(text, ours),
            Segment("[/TOOL_RESULTS]", True),
        ]

    def parse_call(self, raw: str, tools: Tools) -> ParsedCall | BadCall | list[ParsedCall | BadCall]:
        calls: list[ParsedCall | BadCall] = []
        for part in raw.removesuffix(EOS).split(CALLS):
            name, sep, arguments = part.partition(ARGS)
            if not sep or not name.strip():
                calls.append(BadCall(part, f"the tool call has no NAME[ARGS]; {_SHAPE}"))
                continue
            try:
                calls.append(named_call(name.strip(), json.loads(arguments), part, _SHAPE))
            except json.JSONDecodeError as exc:
                calls.append(BadCall(part, f"the arguments are not valid JSON ({exc.msg} at char {exc.pos}); {_SHAPE}"))
        return calls

    def grammar(self, tools: Tools, *, opened: bool) -> str | None:
        if not tools:
            raise ValueError("a tool-call grammar needs at least one tool")
        names, rules = json_rules(tools)
        one = (
            "("
            + " | ".join(f"{gbnf(t['function']['name'] + ARGS)} {n}" for t, n in zip(tools, names, strict=True))
            + ")"
        )
        first = one if opened else f"{gbnf(CALLS)} {one}"
        return "\n".join([f"root ::= {first} ({gbnf(CALLS)} {one})*", *rules])
