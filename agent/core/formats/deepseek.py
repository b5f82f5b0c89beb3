"""DeepSeek-R1 distills: `<｜User｜>`/`<｜Assistant｜>` turns, calls in `<｜tool▁calls▁begin｜>` blocks.

A call is `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\\n```json\\n{arguments}\\n```<｜tool▁call▁end｜>`,
several inside one `<｜tool▁calls▁begin｜>…<｜tool▁calls▁end｜>`. The prompt opens `<think>`; the
template lists no tools (the system text is all the model sees of them) and drops thoughts from
history (our transcript keeps them). Its quirks are rendered as it renders them: only the first
result of a conversation opens `<｜tool▁outputs▁begin｜>`, and after results the model goes on
right after `<｜tool▁outputs▁end｜>`, without a new `<｜Assistant｜>` or `<think>`.

This module renders, parses and writes the grammar of this family only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from agent.core.formats.base import ChatFormat, Out, Tools, gbnf, json_rules, named_call
from agent.core.parse import BadCall, ParsedCall
from agent.core.records import Call
from agent.core.transcript import Message, Segment, tojson
from agent.models.chatml import THINK_CLOSE, THINK_OPEN

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
CALLS_OPEN, CALLS_CLOSE = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_OPEN, CALL_CLOSE, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
OUTPUTS_OPEN, OUTPUTS_CLOSE = "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"
OUTPUT_OPEN, OUTPUT_CLOSE = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"
_SHAPE = f"write {CALLS_OPEN}{CALL_OPEN}function{SEP}NAME\n```json\n{{arguments}}\n```{CALL_CLOSE}{CALLS_CLOSE}"
_CALL = re.compile(
    re.escape(CALL_OPEN) + r"(\w+)" + re.escape(SEP) + r"([^\n]+)\n```(?:json)?\n(.*?)\n?```" + re.escape(CALL_CLOSE),
    re.DOTALL,
)


def r1_call(o: Out, call: Call) -> None:
    o.s(CALL_OPEN + "function" + SEP)
    o.d(call.name)
    o.s("\n```json\n")
    o.d(tojson(call.arguments))
    o.s("\n```" + CALL_CLOSE)


class DeepSeekR1(ChatFormat):
    """DeepSeek-R1 distills (Qwen and Llama based)."""

    name = "deepseek-r1"
    call_open, call_close = CALLS_OPEN, CALLS_CLOSE
    end_of_turn = EOS
    call_shape = _SHAPE
    structure = re.compile(r"<｜[^｜<>]{1,40}｜>")

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        o = Out()
        systems = [m.content for m in messages if m.role == "system"]
        if messages and messages[0].role == "system":
            o.s(BOS)
            o.d(systems[-1])
        first_call = first_output = True
        after_tool = False
        for m in messages:
            if m.role == "user":
                after_tool = False
                o.s(USER)
                o.d(m.content)
            elif m.role == "assistant":
                if m.tool_calls:
                    after_tool = False
                    for call in m.tool_calls:
                        o.s(ASSISTANT + CALLS_OPEN if first_call else "\n")
                        first_call = False
                        r1_call(o, call)
                    o.s(CALLS_CLOSE + EOS)
                if m.content or not m.tool_calls:  # the template renders a call's content again
                    o.s(OUTPUTS_CLOSE if after_tool else ASSISTANT)
                    o.d(m.content if after_tool else m.content.split(THINK_CLOSE)[-1])
                    o.s(EOS)
                    after_tool = False
            elif m.role == "tool":
                after_tool = True
                o.segments += self.observation(m.content, open_turn=first_output)
                first_output = False
        if after_tool:
            o.s(OUTPUTS_CLOSE)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        if text.endswith(OUTPUT_CLOSE):  # after results the template writes only their end
            return OUTPUTS_CLOSE, False
        if thinking and not answer_now:
            return ASSISTANT + THINK_OPEN + "\n", True
        return ASSISTANT + THINK_OPEN + "\n" + THINK_CLOSE, False

    def opens_observations(self, text: str) -> bool:
        return OUTPUTS_OPEN not in text

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [
            Segment(OUTPUTS_OPEN + OUTPUT_OPEN if open_turn else "\n" + OUTPUT_OPEN, True),
            self.result(text, ours),
            Segment(OUTPUT_CLOSE, True),
        ]

    def parse_call(self, raw: str, tools: Tools) -> ParsedCall | BadCall | list[ParsedCall | BadCall]:
        calls: list[ParsedCall | BadCall] = []
        at = 0
        for match in _CALL.finditer(raw):
            if raw[at : match.start()].strip():
                break
            at = match.end()
            try:
                arguments = json.loads(match.group(3))
            except json.JSONDecodeError as exc:
                calls.append(BadCall(match.group(0), f"the arguments are not valid JSON ({exc.msg}); {_SHAPE}"))
                continue
            calls.append(named_call(match.group(2).strip(), arguments, match.group(0), _SHAPE))
        if not calls or raw[at:].strip():
            calls.append(BadCall(raw[at:], f"the tool call could not be read; {_SHAPE}"))
        return calls

    def grammar(self, tools: Tools, *, opened: bool) -> str | None:
        if not tools:
            raise ValueError("a tool-call grammar needs at least one tool")
        names, rules = json_rules(tools)
        variants = [
            f"{gbnf(t['function']['name'] + chr(10) + '```json' + chr(10))} {n}"
            for t, n in zip(tools, names, strict=True)
        ]
        one = f"{gbnf(CALL_OPEN + 'function' + SEP)} ({' | '.join(variants)}) {gbnf(chr(10) + '```' + CALL_CLOSE)}"
        first = one if opened else f'"\\n"? "\\n"? {gbnf(CALLS_OPEN)} {one}'
        return "\n".join([f'root ::= {first} ("\\n" {one})* {gbnf(CALLS_CLOSE)}', *rules])
