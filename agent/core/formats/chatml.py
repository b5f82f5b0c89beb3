"""The ChatML families with Hermes calls: QwQ-32B, Qwen2.5, Qwen3, Hermes 3 and SmolLM3.

All write `<tool_call>{"name", "arguments"}</tool_call>` between `<|im_start|>`/`<|im_end|>`
turns and differ in the system turn (how the tools are listed), in what history keeps of a
thought, and in what opens the assistant turn:

- QwQ: the prompt opens `<think>`; history drops thoughts (our transcript keeps them).
- Qwen2.5: no thought; a default system prompt when there is none.
- Qwen3 (and the 2507 Thinking models): the model opens `<think>` itself; without thinking
  the prompt writes an empty thought (`enable_thinking=False`); history keeps the thoughts of
  the current tool loop.
- Hermes 3: tools listed with Python-style signatures; results in a `tool` turn.
- SmolLM3 (llama.cpp's template): `/think` or `/no_think` in its metadata; this template lists
  no tools and shows results as user turns.

This module renders and names tags; parsing Hermes calls is the default of `ChatFormat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.core.formats.base import ChatFormat, Out, Tools
from agent.core.records import Call
from agent.core.transcript import Message, Segment, tojson
from agent.models.chatml import IM_END, IM_START, THINK_CLOSE, THINK_OPEN

QWQ_PREAMBLE = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
QWQ_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
    '"arguments": <args-json-object>}\n</tool_call>' + IM_END + "\n"
)
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


class QwQ(ChatFormat):
    """QwQ-32B's template: the generation prompt opens `<think>`; history drops thoughts."""

    name = "qwq"
    drops_thoughts = True
    default_system: str | None = None
    tools_preamble = QWQ_PREAMBLE

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        o = Out()
        system = messages[0].content if messages and messages[0].role == "system" else None
        if tools:
            o.s(IM_START + "system\n")
            o.d(system if system is not None else self.default_system or "")
            o.s(self.tools_preamble + "".join("\n" + tojson(t) for t in tools) + QWQ_POSTAMBLE)
        elif system is not None:
            o.s(IM_START + "system\n")
            o.d(system)
            o.s(IM_END + "\n")
        for i, m in enumerate(messages):
            if m.role == "user" or (m.role == "system" and i > 0):
                self.user(o, m)
            elif m.role == "assistant":
                self.assistant(o, m)
            elif m.role == "tool":
                first = i == 0 or messages[i - 1].role != "tool"
                last = i == len(messages) - 1 or messages[i + 1].role != "tool"
                o.segments += self.observation(m.content, open_turn=first, close_turn=last)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def user(self, o: Out, m: Message) -> None:
        o.s(f"{IM_START}{m.role}\n")
        o.d(m.content)
        o.s(IM_END + "\n")

    def assistant(self, o: Out, m: Message) -> None:
        content = m.content.split(THINK_CLOSE)[-1].lstrip("\n") if self.drops_thoughts else m.content
        o.s(IM_START + "assistant")
        if m.content or not m.tool_calls:
            o.s("\n")
            o.d(content)
        for call in m.tool_calls:
            o.s("\n")
            hermes_call(o, call)
        o.s(IM_END + "\n")

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        opened = f"{IM_START}assistant\n" + (f"{THINK_OPEN}\n" if thinking else "")
        if answer_now and thinking:
            return opened + "\n" + THINK_CLOSE + "\n\n", False
        return opened, thinking

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [
            Segment((IM_START + "user" if open_turn else "") + "\n<tool_response>\n", True),
            self.result(text, ours),
            Segment("\n</tool_response>" + (IM_END + "\n" if close_turn else ""), True),
        ]


def hermes_call(o: Out, call: Call) -> None:
    """`<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`, name and arguments as data."""
    o.s('<tool_call>\n{"name": "')
    o.d(call.name)
    o.s('", "arguments": ')
    o.d(tojson(call.arguments))
    o.s("}\n</tool_call>")


class Qwen25(QwQ):
    """Qwen2.5 Instruct (and plain ChatML, such as SmolLM2): no thought, Qwen's default system prompt."""

    name = "qwen2.5"
    drops_thoughts = False
    default_system = QWEN_SYSTEM


class Qwen3(QwQ):
    """Qwen3: the model opens its own `<think>`; `enable_thinking=False` writes an empty one."""

    name = "qwen3"
    drops_thoughts = False
    tools_preamble = QWQ_PREAMBLE.removeprefix("\n\n")

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        if tools and messages and messages[0].role == "system":  # its system text ends in "\n\n"
            messages = [Message("system", messages[0].content + "\n\n"), *messages[1:]]
        segments = super().render(messages, tools, generation_prompt=generation_prompt)
        return segments

    def assistant(self, o: Out, m: Message) -> None:
        o.s(IM_START + "assistant\n")
        o.d(m.content)
        for i, call in enumerate(m.tool_calls):
            if i or m.content:
                o.s("\n")
            hermes_call(o, call)
        o.s(IM_END + "\n")

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        if thinking and not answer_now:
            return f"{IM_START}assistant\n", False
        return f"{IM_START}assistant\n{THINK_OPEN}\n\n{THINK_CLOSE}\n\n", False

    def may_open_thought(self, thinking: bool) -> bool:
        return thinking


class Qwen3Thinking(Qwen3):
    """Qwen3 2507 Thinking: Qwen3's template, but the generation prompt opens `<think>` always."""

    name = "qwen3-thinking"

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        return QwQ.prompt(self, text, thinking=True, answer_now=answer_now or not thinking)

    def may_open_thought(self, thinking: bool) -> bool:
        return False


class Hermes3(QwQ):
    """Hermes 3 (Llama 3.1): tools with Python-style signatures; results in a `tool` turn."""

    name = "hermes3"
    drops_thoughts = False

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = False,
    ) -> list[Segment]:
        o = Out()
        if tools or (messages and messages[0].role == "system"):
            o.s("<|begin_of_text|>" + IM_START + "system\n" + hermes3_tools(tools))
        for i, m in enumerate(messages):
            if m.role in ("user", "system") or (m.role == "assistant" and not m.tool_calls):
                self.user(o, m)
            elif m.role == "assistant":
                o.s(IM_START + "assistant")
                for call in m.tool_calls:
                    o.s("\n")
                    hermes_call(o, call)
                o.s(IM_END + "\n")
            elif m.role == "tool":
                first = i > 0 and messages[i - 1].role != "tool"
                last = i == len(messages) - 1 or messages[i + 1].role != "tool"
                o.segments += self.observation(m.content, open_turn=first, close_turn=last)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        return f"{IM_START}assistant\n", False

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        # As history renders it (a result followed by more): "\n</tool_response>\n", then the
        # end of the turn with no newline after it.
        return [
            Segment((IM_START + "tool\n" if open_turn else "") + "<tool_response>\n", True),
            self.result(text, ours),
            Segment("\n</tool_response>\n" + (IM_END if close_turn else ""), True),
        ]


def python_type(spec: dict[str, Any]) -> str:
    """Hermes 3's `json_to_python_type`."""
    basic = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"}
    kind = spec.get("type")
    if isinstance(kind, str) and kind in basic:
        return basic[kind]
    if kind == "array":
        return "list[" + python_type(spec.get("items") or {}) + "]"
    if kind == "object":
        extra = spec.get("additionalProperties")
        return "dict[str, " + python_type(extra) + "]" if isinstance(extra, dict) else "dict"
    if isinstance(kind, list):
        return "Union[" + ",".join(python_type({"type": t}) for t in kind) + "]"
    return "Any"


def hermes3_tools(tools: Tools) -> str:
    """Hermes 3's system turn: the tool list and how to call (it renders the system message after)."""
    out = (
        "You are a function calling AI model. You are provided with function signatures within <tools></tools> "
        "XML tags. You may call one or more functions to assist with the user query. Don't make assumptions "
        "about what values to plug into functions. Here are the available tools: <tools> "
    )
    rendered = []
    for t in tools:
        f = t.get("function", t)
        params = (f.get("parameters") or {}).get("properties") or {}
        signature = ", ".join(f"{p}: {python_type(s)}" for p, s in params.items())
        text = '{"type": "function", "function": {"name": "' + f["name"] + '", "description": "'
        text += f["name"] + "(" + signature + ")"
        if "return" in f:
            text += " -> " + python_type(f["return"])
        text += " - " + f["description"] + "\n\n"
        for i, (p, s) in enumerate(params.items()):
            text += ("    Args:\n" if i == 0 else "") + "        " + p + "(" + python_type(s) + "): "
            text += str(s.get("description", "")).strip()
        if "return" in f and "description" in f["return"]:
            text += "\n    Returns:\n        " + f["return"]["description"]
        text += '", "parameters": ' + ("{}" if not params else tojson(f.get("parameters"))) + "}"
        rendered.append(text)
    out += "\n".join(rendered) + " </tools>"
    out += (
        'Use the following pydantic model json schema for each tool call you will make: {"properties": '
        '{"name": {"title": "Name", "type": "string"}, "arguments": {"title": "Arguments", "type": "object"}}, '
        '"required": ["name", "arguments"], "title": "FunctionCall", "type": "object"}}\n'
        "For each function call return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-dict>}\n</tool_call>' + IM_END + "\n"
    )
    return out


SMOL_THINK = (
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise "
    "and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, "
    "exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking "
    "process. Please structure your response into two main sections: Thought and Solution using the specified "
    "format: <think> Thought section </think> Solution section. In the Thought section, detail your reasoning "
    "process in steps. Each step should include detailed considerations such as analysing questions, "
    "summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, "
    "refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, "
    "explorations, and reflections from the Thought section, systematically present the final solution that "
    "you deem correct. The Solution section should be logical, accurate, and concise and detail necessary "
    "steps needed to reach the conclusion."
)
SMOL_PLAIN = "You are a helpful AI assistant named SmolLM, trained by Hugging Face."


class SmolLM3(QwQ):
    """SmolLM3: `/think` or `/no_think` (from the system text, else the thinking switch)."""

    name = "smollm3"
    drops_thoughts = False

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        o = Out()
        if messages and messages[0].role == "system":
            o.s(IM_START + "system\n")
            system = messages[0].content
            mode = "/no_think" if "/no_think" in system else "/think" if "/think" in system else None
            mode = mode or ("/think" if thinking else "/no_think")
            custom = system.replace("/no_think", "").replace("/think", "").rstrip()
            o.s(
                f"## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: {mode}\n\n## Custom Instructions\n\n"
            )
            if custom:
                o.d(custom)
                o.s("\n\n")
            else:
                o.s((SMOL_THINK if mode == "/think" else SMOL_PLAIN) + "\n\n")
            o.s(IM_END + "\n")
        for m in messages:
            if m.role == "user":
                self.user(o, m)
            elif m.role == "assistant":
                o.s(IM_START + "assistant\n" + ("" if thinking else f"{THINK_OPEN}\n\n{THINK_CLOSE}\n"))
                o.d(m.content.lstrip("\n"))
                o.s(IM_END + "\n")
            elif m.role == "tool":
                o.segments += self.observation(m.content)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        if thinking and not answer_now:
            return f"{IM_START}assistant\n", False
        return f"{IM_START}assistant\n{THINK_OPEN}\n\n{THINK_CLOSE}\n", False

    def may_open_thought(self, thinking: bool) -> bool:
        return thinking

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [Segment(IM_START + "user\n", True), self.result(text, ours), Segment(IM_END + "\n", True)]

    def opens_observations(self, text: str) -> bool:
        return True


QWQ = QwQ()
render = QWQ.render
"""Render messages as QwQ-32B's template does."""
observation = QWQ.observation
"""A tool result as QwQ-32B's template renders it."""


def assistant_prompt(thinking: bool) -> str:
    """What opens an assistant turn in QwQ's template (which also opens the thought)."""
    return QWQ.prompt("", thinking=thinking)[0]
