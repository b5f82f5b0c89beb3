"""gpt-oss's harmony format: `<|start|>ROLE<|message|>…<|end|>` messages in channels.

The model thinks in the analysis channel (`<|channel|>analysis<|message|>…<|end|>`), answers in
the final one, and calls a tool with `to=functions.NAME<|channel|>commentary json<|message|>{…}`
ended by `<|call|>`, an end-of-generation token (so the turn's end closes the call). Tools are
listed as a TypeScript namespace in the developer message; a result comes back as a message from
`functions.NAME`, its text JSON-encoded. The system message carries the date and
`Reasoning: medium`. History drops the analysis once a final answer follows (our transcript
keeps it).

This module renders, parses and writes the grammar of this family only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

from agent.core.formats.base import ChatFormat, Out, Tools, gbnf, json_rules, named_call
from agent.core.parse import BadCall, ParsedCall
from agent.core.transcript import Message, Segment, tojson

START, END, MESSAGE, CHANNEL, CALL = "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>"
IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
_SHAPE = "write to=functions.NAME<|channel|>commentary json<|message|>{arguments}<|call|>"
_BODY = re.compile(
    r"^([\w.-]+)\s*(?:<\|channel\|>\s*commentary)?\s*(?:<\|constrain\|>)?\s*(?:json)?\s*<\|message\|>(.*)$", re.DOTALL
)


def ts_type(spec: dict[str, Any]) -> str:
    """The template's `render_typescript_type`, for the schemas tools have (no nested objects)."""
    kind = spec.get("type")
    null = " | null" if spec.get("nullable") else ""
    if kind == "array":
        items = spec.get("items")
        if not items:
            return "any[]" + null
        inner = {"string": "string[]", "number": "number[]", "integer": "number[]", "boolean": "boolean[]"}
        return inner.get(items.get("type"), "any[]") + null
    if isinstance(kind, list) and kind:
        return " | ".join(kind)
    if kind == "string":
        return '"' + '" | "'.join(spec["enum"]) + '"' if spec.get("enum") else "string" + null
    return {"number": "number", "integer": "number", "boolean": "boolean", "object": "object"}.get(str(kind), "any")


def namespace(tools: Tools) -> str:
    """The template's `render_tool_namespace("functions", tools)`."""
    out = "## functions\n\nnamespace functions {\n\n"
    for t in tools:
        f = t["function"]
        out += "// " + f["description"] + "\n" + "type " + f["name"] + " = "
        params = f.get("parameters") or {}
        if params.get("properties"):
            out += "(_: {\n"
            required = params.get("required") or []
            for name, spec in params["properties"].items():
                if spec.get("description"):
                    out += "// " + spec["description"] + "\n"
                out += name + ("" if name in required else "?") + ": " + ts_type(spec)
                if "default" in spec:
                    out += ", // default: " + (str(spec["default"]) if spec.get("enum") else tojson(spec["default"]))
                out += ",\n"
            out += "}) => any;\n\n"
        else:
            out += "() => any;\n\n"
    return out + "} // namespace functions"


class Harmony(ChatFormat):
    """gpt-oss 20b / 120b."""

    name = "gpt-oss"
    think_open, think_close = CHANNEL + "analysis" + MESSAGE, END
    call_open, call_close = "to=functions.", CALL
    call_ends_turn = True
    end_of_turn = END
    silent = (
        START + "assistant",
        CHANNEL + "final" + MESSAGE,
        CHANNEL + "commentary" + MESSAGE,
        CHANNEL + "commentary",
    )
    call_shape = _SHAPE
    reasoning_effort = "medium"

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
            o.s(START + "system" + MESSAGE + IDENTITY + "\nKnowledge cutoff: 2024-06\n")
            o.s("Current date: " + time.strftime("%Y-%m-%d") + "\n\nReasoning: " + self.reasoning_effort + "\n\n")
            o.s("# Valid channels: analysis, commentary, final. Channel must be included for every message.")
            o.s("\nCalls to these tools must go to the commentary channel: 'functions'." if tools else "")
            o.s(END)
            developer = rest.pop(0).content
            if developer or tools:
                o.s(START + "developer" + MESSAGE)
                if developer:
                    o.s("# Instructions\n\n")
                    o.d(developer)
                    o.s("\n\n")
                if tools:
                    o.s("# Tools\n\n" + namespace(tools))
                o.s(END)
        last_call = ""
        for i, m in enumerate(rest):
            if m.role == "assistant" and m.tool_calls:
                final_later = any(n.role == "assistant" and not n.tool_calls for n in rest[i + 1 :])
                if m.content and not final_later:
                    o.s(START + "assistant" + CHANNEL + "analysis" + MESSAGE)
                    o.d(m.content)
                    o.s(END)
                call = m.tool_calls[0]  # the template renders one call per message
                o.s(START + "assistant to=functions.")
                o.d(call.name)
                o.s(CHANNEL + "commentary json" + MESSAGE)
                o.d(tojson(call.arguments))
                o.s(CALL)
                last_call = call.name
            elif m.role == "assistant":
                o.s(START + "assistant" + CHANNEL + "final" + MESSAGE)
                o.d(m.content)
                o.s(END)
                last_call = ""
            elif m.role == "tool":
                o.segments += self.observation(m.content, name=last_call)
            elif m.role == "user":
                o.s(START + "user" + MESSAGE)
                o.d(m.content)
                o.s(END)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        if answer_now:
            return START + "assistant" + CHANNEL + "final" + MESSAGE, False
        return START + "assistant", False

    def may_open_thought(self, thinking: bool) -> bool:
        return thinking

    def end(self, called: bool) -> str:
        return CALL if called else END

    def opens_observations(self, text: str) -> bool:
        return True

    def close_text(self, text: str) -> str:
        return text.replace("</think>\n\n", END + START + "assistant" + CHANNEL + "final" + MESSAGE)

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [
            Segment(START + "functions.", True),
            Segment(name, False),
            Segment(" to=assistant" + CHANNEL + "commentary" + MESSAGE, True),
            self.result(text, ours, encode=tojson),
            Segment(END, True),
        ]

    def parse_call(self, raw: str, tools: Tools) -> ParsedCall | BadCall:
        match = _BODY.match(raw.strip())
        if not match:
            return BadCall(raw, f"the tool call could not be read; {_SHAPE}")
        try:
            arguments = json.loads(match.group(2).strip() or "{}")
        except json.JSONDecodeError as exc:
            return BadCall(raw, f"the arguments are not valid JSON ({exc.msg} at char {exc.pos}); {_SHAPE}")
        return named_call(match.group(1), arguments, raw, _SHAPE)

    def grammar(self, tools: Tools, *, opened: bool) -> str | None:
        if not tools:
            raise ValueError("a tool-call grammar needs at least one tool")
        names, rules = json_rules(tools)
        variants = [
            f"{gbnf(t['function']['name'] + CHANNEL + 'commentary json' + MESSAGE)} {n}"
            for t, n in zip(tools, names, strict=True)
        ]
        body = f"({' | '.join(variants)})"
        # Forced after a closed analysis the model must open its next message first.
        forced = f"{gbnf(START + 'assistant')}? {gbnf(' ' + self.call_open)} {body}"
        return "\n".join([f"root ::= {body if opened else forced}", *rules])
