"""The fallback for a template of no known family: render with the template itself.

Jinja is run as transformers and llama.cpp run chat templates (sandboxed, `trim_blocks`,
`lstrip_blocks`, their `tojson`, `strftime_now`, `raise_exception`). The first prompt is the
template's own rendering; each later message adds what it adds to a small stand-in
conversation (the difference of two renders), so the transcript still only grows. Message text
is found in the rendering through sentinels and kept as data. Calls are read as Hermes
`<tool_call>` JSON, the fallback the issue asked for; a warning says so once per template.

This module does not know any family; it does not run a model.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from agent.core.formats.base import ChatFormat, Tools
from agent.core.records import Call
from agent.core.transcript import Message, Segment

log = logging.getLogger(__name__)
_SENTINEL = "\x00{}\x00"
_SENTINELS = re.compile("\x00(\\d+)\x00")
_TAG = re.compile(r"<\|?[A-Za-z_]{2,30}\|?>|<[A-Za-z_]{2,30}\|>|\[/?[A-Z_]{3,20}\]")
"""What looks like a special token in a template (`<start_of_turn>`, `<|turn>`, `[INST]`): neutralized."""
_warned: set[int] = set()  # templates warned about, by hash


def environment() -> Any:
    """A Jinja environment that renders chat templates as transformers and llama.cpp do."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        from jinja2.exceptions import TemplateError

        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: time.strftime(fmt)
    return env


@lru_cache(maxsize=16)
def compiled(template: str) -> Any:
    """The template, compiled once."""
    return environment().from_string(template)


def as_dicts(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages in the shape chat templates take (OpenAI's), calls with `function` inside."""
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls
            ]
        out.append(d)
    return out


class Jinja(ChatFormat):
    """Any template, rendered by itself; Hermes calls."""

    name = "jinja"

    def __init__(self, template: str, bos_token: str = "") -> None:
        self.template, self.bos_token = template, bos_token
        tags = sorted(set(_TAG.findall(template)), key=len, reverse=True)
        self.structure = re.compile("|".join(map(re.escape, tags))) if tags else re.compile(r"(?!)")
        if hash(template) not in _warned:
            _warned.add(hash(template))
            log.warning("chat template of no known family: rendering with it, reading calls as Hermes <tool_call>")

    def text(self, messages: Sequence[Message], tools: Tools = (), *, generation: bool = False, **extra: Any) -> str:
        """The template's rendering of `messages`."""
        return str(
            compiled(self.template).render(
                messages=as_dicts(messages),
                tools=list(tools) or None,
                add_generation_prompt=generation,
                bos_token=self.bos_token,
                eos_token="",
                **extra,
            )
        )

    def _stub(self, tool_call: bool, name: str = "tool") -> list[Message]:
        call = (Call(name or "tool", {}),) if tool_call else ()
        return [Message("system", "s"), Message("user", "q"), Message("assistant", "" if call else "a", call)]

    def _after(
        self,
        stub: list[Message],
        messages: Sequence[Message],
        *,
        generation: bool = False,
        defuse: Any = None,
        **extra: Any,
    ) -> list[Segment]:
        marked_stub = [_marked(m, 1000 + i) for i, m in enumerate(stub)]
        base = self.text(marked_stub, **extra)
        full = self.text(
            [*marked_stub, *(_marked(m, i) for i, m in enumerate(messages))], generation=generation, **extra
        )
        start = len(base) if full.startswith(base) else _common(full, base)
        return _split(full[start:], messages, defuse or self.neutralize)

    def render(
        self,
        messages: Sequence[Message],
        tools: Tools = (),
        *,
        generation_prompt: str | None = None,
        thinking: bool = True,
    ) -> list[Segment]:
        extra = {"enable_thinking": thinking}
        if messages and messages[0].role == "system":
            rendered = self.text([_marked(m, i) for i, m in enumerate(messages)], tools, **extra)
            out = _split(rendered, messages, self.neutralize)
        else:
            out = self._after(self._stub(False), messages, **extra)
        if generation_prompt is not None:
            out.append(Segment(generation_prompt, True))
        return out

    def prompt(self, text: str, *, thinking: bool, answer_now: bool = False) -> tuple[str, bool]:
        stub = [Message("system", "s"), Message("user", "q")]
        extra: dict[str, Any] = {"enable_thinking": thinking and not answer_now}
        without = self.text(stub, **extra)
        opening = self.text(stub, generation=True, **extra)[len(without) :]
        opened = bool(self.think_open) and opening.rstrip().endswith(self.think_open)
        if answer_now and opened:
            return opening + "\n" + self.think_close + "\n\n", False
        return opening, opened

    def end(self, called: bool) -> str:
        stub = [Message("system", "s"), Message("user", "q"), Message("assistant", _SENTINEL.format(0))]
        rendered = self.text(stub)
        return rendered[rendered.rfind("\x00") + 1 :]

    def opens_observations(self, text: str) -> bool:
        return True

    def observation(
        self, text: str, *, name: str = "", open_turn: bool = True, close_turn: bool = True, ours: bool = False
    ) -> list[Segment]:
        return self._after(self._stub(True, name), [Message("tool", text)], defuse=(lambda t: t) if ours else None)


def _marked(m: Message, i: int) -> Message:
    return Message(m.role, _SENTINEL.format(i) if m.content else "", m.tool_calls)


def _split(rendered: str, messages: Sequence[Message], defuse: Any) -> list[Segment]:
    """Segments of a rendering made with sentinels: message text as data, the rest structure."""
    out: list[Segment] = []
    at = 0
    for match in _SENTINELS.finditer(rendered):
        if match.start() > at:
            out.append(Segment(rendered[at : match.start()], True))
        i = int(match.group(1))
        if i < len(messages):
            m = messages[i]
            out.append(Segment(defuse(m.content) if m.role == "tool" else m.content, False))
        at = match.end()
    if at < len(rendered):
        out.append(Segment(rendered[at:], True))
    return [s for s in out if s.text]


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
