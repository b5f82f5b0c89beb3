"""Qwen3.5 / 3.6 and Qwen3-Coder: ChatML turns, XML calls with parameters typed by the schema.

A call is `<tool_call>\\n<function=NAME>\\n<parameter=P>\\nVALUE\\n</parameter>\\n</function>\\n
</tool_call>`; a value is text, read back as the parameter's schema type (a number, a boolean,
JSON for objects and arrays). Qwen3.5 thinks (the prompt opens `<think>`, history keeps the
thoughts after the last question); Qwen3-Coder does not, and lists its tools as XML.

This module renders, parses and writes the grammar of these two families only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from agent.core.formats.base import Out, Tools, gbnf, json_rules
from agent.core.formats.chatml import QwQ
from agent.core.parse import BadCall, ParsedCall
from agent.core.records import Call
from agent.core.transcript import Message, Segment, tojson
from agent.models.chatml import IM_END, IM_START, THINK_CLOSE

QWEN35_RULES = (
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n"
    "<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
    "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified "
    "format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in "
    "natural language BEFORE the function call, but NOT after\n- If there is no function call available, answer "
    "the question like normal with your current knowledge and do not tell the user about function calls\n"
    "</IMPORTANT>"
)
CODER_RULES = (
    "\n\nIf you choose to call a tool ONLY reply in the following format with NO suffix:\n\n<tool_call>\n"
    "<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nvalue_2\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n"
    "- Function calls MUST follow the specified format: the tool calling block MUST begin with an opening "
    "<tool_call> tag and end with a closing </tool_call> tag.\n- Required parameters MUST be specified\n- You may "
    "provide optional reasoning for your function call in natural language BEFORE the function call, but NOT after\n"
    "- If there is no function call available, answer the question like normal with your current knowledge and do "
    "not tell the user about function calls\n</IMPORTANT>"
)
CODER_SYSTEM = "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks."
_SHAPE = "write <tool_call>\n<function=NAME>\n<parameter=ARGUMENT>\nVALUE\n</parameter>\n</function>\n</tool_call>"
_FUNCTION = re.compile(r"^\s*<function=([^>\n]+)>\n?(.*?)</function>\s*$", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>\s*", re.DOTALL)


def value_text(value: Any) -> str:
    """A parameter value as the template writes it: JSON for objects and lists, else Jinja's `string`."""
    if isinstance(value, dict | list | tuple):
        return tojson(value)
    return str(value)


def xml_call(o: Out, call: Call) -> None:
    """`<tool_call>\\n<function=NAME>\\n` parameters `</function>\\n</tool_call>`."""
    o.s("<tool_call>\n<function=")
    o.d(call.name)
    o.s(">\n")
    for key, value in call.arguments.items():
        o.s("<parameter=")
        o.d(key)
        o.s(">\n")
        o.d(value_text(value))
        o.s("\n</parameter>\n")
    o.s("</function>\n</tool_call>")


def typed(text: str, schema: dict[str, Any]) -> Any:
    """A parameter's text as the value its schema says it is (text when it cannot be read so)."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text.strip())
        if kind == "number":
            number = float(text.strip())
            return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean" and text.strip().lower() in ("true", "false"):
            return text.strip().lower() == "true"
        if kind in ("object", "array") or (kind is None and text.strip()[:1] in ("{", "[")):
            return json.loads(text)
    except ValueError:
        pass
    return text


class Qwen35(QwQ):
    """Qwen3.5 / 3.6: thinks; XML calls; tools as JSON in the system turn."""

    name = "qwen3.5"
    drops_thoughts = False
    call_shape = _SHAPE
    structure = re.compile(r"<\s*/?\s*(?:function|parameter)\b[^<>]{0,200}>", re.IGNORECASE)
    rules = QWEN35_RULES

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        o = Out()
        system = messages[0].content.strip() if messages and messages[0].role == "system" else None
        if tools:
            o.s(IM_START + "system\n")
            self.tool_list(o, tools)
            if system:
                o.s("\n\n")
                o.d(system)
            o.s(IM_END + "\n")
        elif system is not None:
            o.s(IM_START + "system\n")
            o.d(system)
            o.s(IM_END + "\n")
        for i, m in enumerate(messages):
            if m.role == "user":
                o.s(IM_START + "user\n")
                o.d(self.text(m.content))
                o.s(IM_END + "\n")
            elif m.role == "assistant":
                self.assistant(o, m)
            elif m.role == "tool":
                first = i > 0 and messages[i - 1].role != "tool"
                last = i == len(messages) - 1 or messages[i + 1].role != "tool"
                o.segments += self.observation(m.content, open_turn=first, close_turn=last)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def text(self, content: str) -> str:
        return content.strip()

    def tool_list(self, o: Out, tools: Tools) -> None:
        o.s("# Tools\n\nYou have access to the following functions:\n\n<tools>")
        o.s("".join("\n" + tojson(t) for t in tools) + "\n</tools>" + self.rules)

    def assistant(self, o: Out, m: Message) -> None:
        content = m.content.strip()
        if THINK_CLOSE in content:
            content = content.split(THINK_CLOSE)[-1].lstrip("\n")
        o.s(IM_START + "assistant\n")
        o.d(content)
        for i, call in enumerate(m.tool_calls):
            o.s(("\n\n" if content.strip() else "") if i == 0 else "\n")
            xml_call(o, call)
        o.s(IM_END + "\n")

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [
            Segment((IM_START + "user" if open_turn else "") + "\n<tool_response>\n", True),
            self.result(text.strip(), ours),
            Segment("\n</tool_response>" + (IM_END + "\n" if close_turn else ""), True),
        ]

    def parse_call(self, raw: str, tools: Tools) -> ParsedCall | BadCall:
        match = _FUNCTION.match(raw)
        if not match:
            return BadCall(raw, f"the tool call has no <function=NAME>…</function>; {_SHAPE}")
        name, body = match.group(1).strip(), match.group(2)
        schema = next((t["function"].get("parameters") or {} for t in tools if t["function"]["name"] == name), {})
        properties = schema.get("properties") or {}
        arguments: dict[str, Any] = {}
        at = 0
        for p in _PARAMETER.finditer(body):
            if body[at : p.start()].strip():
                break
            arguments[p.group(1).strip()] = typed(p.group(2), properties.get(p.group(1).strip(), {}))
            at = p.end()
        if body[at:].strip():
            return BadCall(raw, f"the tool call has text outside <parameter=…>…</parameter>; {_SHAPE}")
        return ParsedCall(Call(name, arguments), raw)

    def grammar(self, tools: Tools, *, opened: bool) -> str | None:
        """Parameters in schema order (required ones always), each value by its type."""
        if not tools:
            raise ValueError("a tool-call grammar needs at least one tool")
        complex_schemas = []
        rules: list[str] = []
        variants = []
        for i, t in enumerate(tools):
            schema = t["function"].get("parameters") or {}
            required = set(schema.get("required") or ())
            parts = []
            for key, spec in (schema.get("properties") or {}).items():
                kind = spec.get("type")
                if "enum" in spec:
                    value = "(" + " | ".join(gbnf(value_text(v)) for v in spec["enum"]) + ")"
                elif kind == "integer":
                    value = "xml-int"
                elif kind == "number":
                    value = "xml-number"
                elif kind == "boolean":
                    value = '("true" | "false")'
                elif kind in ("object", "array"):
                    complex_schemas.append({"type": "function", "function": {"name": key, "parameters": spec}})
                    value = f"xml-json{len(complex_schemas) - 1}"
                else:
                    value = "xml-text"
                part = f"{gbnf('<parameter=' + key + '>' + chr(10))} {value} {gbnf(chr(10) + '</parameter>' + chr(10))}"
                parts.append(part if key in required else f"({part})?")
            body = " ".join(parts) or '""'
            rules.append(f"tool{i} ::= {gbnf(t['function']['name'] + '>' + chr(10))} {body}")
            variants.append(f"tool{i}")
        names, json_part = json_rules(complex_schemas) if complex_schemas else ([], [])
        rules += [f"xml-json{i} ::= {n}" for i, n in enumerate(names)]
        one = f'"\\n<function=" ({" | ".join(variants)}) "</function>\\n</tool_call>"'
        first = one if opened else f'"\\n"? "\\n"? "<tool_call>" {one}'
        return "\n".join(
            [
                f'root ::= {first} ("\\n<tool_call>" {one})*',
                *rules,
                'xml-text ::= ([^<] | "<" [^/])*',
                'xml-int ::= "-"? [0-9]+',
                'xml-number ::= "-"? [0-9]+ ("." [0-9]+)?',
                *json_part,
            ]
        )


class Qwen3Coder(Qwen35):
    """Qwen3-Coder: no thought; tools listed as XML; results in a user turn of their own."""

    name = "qwen3-coder"
    rules = CODER_RULES

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = False,
    ) -> list[Segment]:
        o = Out()
        system = messages[0].content if messages and messages[0].role == "system" else None
        rest = messages[1:] if system is not None else messages
        if system is not None or tools:
            o.s(IM_START + "system\n")
            if system is not None:
                o.d(system)
            else:
                o.s(CODER_SYSTEM)
            if tools:
                self.tool_list(o, tools)
            o.s(IM_END + "\n")
        for i, m in enumerate(rest):
            if m.role == "assistant" and m.tool_calls:
                o.s(IM_START + "assistant")
                if m.content.strip():
                    o.s("\n")
                    o.d(m.content.strip())
                    o.s("\n")
                for call in m.tool_calls:
                    o.s("\n")
                    xml_call(o, call)
                o.s(IM_END + "\n")
            elif m.role == "tool":
                first = i > 0 and rest[i - 1].role != "tool"
                last = i == len(rest) - 1 or rest[i + 1].role != "tool"
                o.segments += self.observation(m.content, open_turn=first, close_turn=last)
            else:
                o.s(f"{IM_START}{m.role}\n")
                o.d(m.content)
                o.s(IM_END + "\n")
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def tool_list(self, o: Out, tools: Tools) -> None:
        text = "\n\n# Tools\n\nYou have access to the following tools:\n\n<tools>"
        for t in tools:
            f = t.get("function", t)
            text += "\n<function>\n<name>" + f["name"] + "</name>"
            if "description" in f:
                text += "\n<description>" + str(f["description"]).strip() + "</description>"
            text += "\n<parameters>"
            params = f.get("parameters")
            if isinstance(params, dict) and isinstance(params.get("properties"), dict):
                for key, spec in params["properties"].items():
                    text += "\n<parameter>\n<name>" + key + "</name>"
                    if "type" in spec:
                        text += "\n<type>" + value_text(spec["type"]) + "</type>"
                    if "description" in spec:
                        text += "\n<description>" + str(spec["description"]).strip() + "</description>"
                    text += extra_keys(spec, ("name", "type", "description")) + "\n</parameter>"
            text += extra_keys(params, ("type", "properties")) + "\n</parameters>"
            text += extra_keys(f, ("type", "name", "description", "parameters")) + "\n</function>"
        o.s(text + "\n</tools>" + self.rules)

    def text(self, content: str) -> str:
        return content

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        return f"{IM_START}assistant\n", False

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [
            Segment((IM_START + "user\n" if open_turn else "") + "<tool_response>\n", True),
            self.result(text, ours),
            Segment("\n</tool_response>\n" + (IM_END + "\n" if close_turn else ""), True),
        ]


def extra_keys(spec: Any, handled: tuple[str, ...]) -> str:
    """Qwen3-Coder's `render_extra_keys`: the keys it does not name, as `<key>value</key>` lines."""
    if not isinstance(spec, dict):
        return ""
    return "".join(f"\n<{k}>{value_text(v)}</{k}>" for k, v in spec.items() if k not in handled)
