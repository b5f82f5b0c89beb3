"""Llama 3.1 / 3.2: header turns, a call as bare JSON `{"name", "parameters"}`, results as `ipython`.

The tools go into the first user turn (the template's default), the date into the system turn
(3.1 says "26 Jul 2024"; 3.2 asks `strftime_now`). A call is the whole assistant turn: it opens
with `{"name"` and ends with the turn's end token, which closes it. No thought.

This module renders, parses and writes the grammar of this family only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from agent.core.formats.base import ChatFormat, Out, Tools, gbnf, json_call, json_rules
from agent.core.parse import BadCall, ParsedCall
from agent.core.transcript import Message, Segment, tojson

BOS, EOT = "<|begin_of_text|>", "<|eot_id|>"
PARAMETERS = ', "parameters": '
_SHAPE = 'answer with only {"name": <tool name>, "parameters": {<argument>: <value>, ...}}'
TOOLS_INTRO = (
    "Given the following functions, please respond with a JSON for a function call "
    "with its proper arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
    "Do not use variables.\n\n"
)


def header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


class Llama3(ChatFormat):
    """Llama 3.1 and 3.2 Instruct."""

    name = "llama3"
    think_open = think_close = ""
    call_open, call_close = '{"name"', EOT
    call_ends_turn = True
    end_of_turn = EOT
    silent = ("<|python_tag|>",)
    call_shape = _SHAPE

    def __init__(self, template: str = "") -> None:
        self.dated = "strftime_now" in template

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = False,
    ) -> list[Segment]:
        o = Out()
        rest = list(messages)
        if rest and rest[0].role == "system":
            o.s(BOS + header("system") + ("Environment: ipython\n" if tools else ""))
            o.s("Cutting Knowledge Date: December 2023\nToday Date: " + self.date() + "\n\n")
            o.d(rest.pop(0).content.strip())
            o.s(EOT)
        if tools and rest:
            o.s(
                header("user")
                + TOOLS_INTRO
                + "".join(json.dumps(t, ensure_ascii=False, indent=4) + "\n\n" for t in tools)
            )
            o.d(rest.pop(0).content.strip())
            o.s(EOT)
        for m in rest:
            if m.role == "assistant" and m.tool_calls:
                call = m.tool_calls[0]  # the template takes one call per turn
                o.s(header("assistant") + '{"name": "')
                o.d(call.name)
                o.s('", "parameters": ')
                o.d(tojson(call.arguments))
                o.s("}" + EOT)
            elif m.role == "tool":
                o.segments += self.observation(m.content)
            else:
                o.s(header(m.role))
                o.d(m.content.strip())
                o.s(EOT)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def date(self) -> str:
        return time.strftime("%d %b %Y") if self.dated else "26 Jul 2024"

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        return header("assistant"), False

    def opens_observations(self, text: str) -> bool:
        return True

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        # The template JSON-encodes the result (a string is "iterable" to Jinja).
        return [Segment(header("ipython"), True), self.result(text, ours, encode=tojson), Segment(EOT, True)]

    def parse_call(self, raw: str, tools: Tools) -> ParsedCall | BadCall:
        return json_call(self.call_open + raw, "parameters", _SHAPE)

    def grammar(self, tools: Tools, *, opened: bool) -> str | None:
        if not tools:
            raise ValueError("a tool-call grammar needs at least one tool")
        names, rules = json_rules(tools)
        variants = [
            f"{gbnf(json.dumps(t['function']['name'], ensure_ascii=False) + PARAMETERS)} {n}"
            for t, n in zip(tools, names, strict=True)
        ]
        # The token that wrote the opener may have written the colon and space after it too.
        body = f'({" | ".join(variants)}) "}}"'
        opening = '":"? " "?' if opened else gbnf(self.call_open + ": ")
        return "\n".join([f"root ::= {opening} {body}", *rules])
