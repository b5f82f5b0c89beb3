"""What happens to one tool call: run it, say it was already made, or wait for a person first.

Mistakes of the model (a bad call, an unknown tool, bad arguments) and `ToolError`s become error
observations; any other exception from a tool is a bug and propagates. The same call repeated
gets the first result back instead of running again (`MAX_REPETITIONS` ends the episode). Calls
that could do harm wait for approval under the agent's `Approval` policy.

This module decides about single calls; the episode (steps, budgets, the transcript) is
`agent.core.graph`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from agent.core.parse import BadCall, ParsedCall
from agent.core.records import Call, ToolCall, ToolCallStarted
from agent.core.settings import Approval
from agent.models.chatml import THINK_CLOSE
from tools import Registry, Tool, ToolError


def run_call(registry: Registry, item: ParsedCall | BadCall, emit: Callable[[Any], None]) -> ToolCall:
    """Run one call; mistakes of the model and `ToolError`s become error observations."""
    if isinstance(item, BadCall):
        return ToolCall("", {}, f"error: {item.error}", error=True)
    name, arguments = item.call.name, item.call.arguments
    emit(ToolCallStarted(name, arguments))
    if name not in registry:
        known = ", ".join(registry) or "none"
        return ToolCall(name, arguments, f"error: there is no tool named {name!r}; the tools are: {known}", True)
    began = time.monotonic()
    try:
        output, error = registry[name].invoke(arguments), False
    except ToolError as exc:
        output, error = f"error: {exc}", True
    return ToolCall(name, arguments, output, error, time.monotonic() - began)


MAX_REPETITIONS = 3
"""The third repetition of an identical call ends the episode with a final answer."""


def same_calls(history: list[ToolCall], item: ParsedCall | BadCall) -> list[ToolCall]:
    """The earlier calls of this episode identical to `item` (same tool, same arguments)."""
    if isinstance(item, BadCall):
        return []
    return [c for c in history if c.name == item.call.name and c.arguments == item.call.arguments]


def repeated_call(earlier: list[ToolCall]) -> ToolCall:
    """The observation for a call the model already made: the first result, not another run."""
    first = earlier[0]
    note = (
        f"You already called {first.name} with these arguments ({len(earlier)} time(s)); it returned: {first.output}\n"
        "Calling it again gives the same result: use it, try something different, or give your final answer."
    )
    return ToolCall(first.name, first.arguments, note, error=True)


def needs_approval(registry: Registry, item: ParsedCall | BadCall, untrusted: bool, approval: Approval) -> str | None:
    """Why a person must approve this call first ("marked", "code", "untrusted"), or None.

    Read from the tool's flags: `needs_approval`, and `runs_code` (the sandbox contains the
    code, but text from the web could be steering it).
    """
    if approval == "never" or isinstance(item, BadCall) or item.call.name not in registry:
        return None
    tool = registry[item.call.name]
    if tool.needs_approval:
        return "marked"
    if tool.runs_code and approval == "always":
        return "code"
    if tool.runs_code and untrusted:
        return "untrusted"
    return None


def could_wait(tools: Iterable[Tool], approval: Approval) -> bool:
    """Whether any of these tools could ever wait for a person under this approval policy."""
    return approval != "never" and any(t.needs_approval or t.runs_code for t in tools)


def default_hint(tools: Iterable[Tool]) -> str:
    """START's hint: Python when a tool runs code (the sandbox's language), else a tool."""
    best = "Python" if any(t.runs_code for t in tools) else "a tool"
    return f"Wait, maybe using {best} here is a good idea."


def calls_in_thought(setting: str | None, chat_template: str, thinking: bool) -> bool:
    """Whether a `<tool_call>` written inside the thought is run (`setting`: "execute", "ignore").

    By default, as the model's chat template expects: one that renders calls after the thought
    (QwQ's, with its `</think>`) means calls belong there, so a call inside the thought is text.
    When the template is unknown (a server that does not report it), a reasoning model is
    taken to be of that family, so a served QwQ behaves as a local one.
    """
    if setting is not None:
        return setting == "execute"
    if chat_template:
        return THINK_CLOSE not in chat_template
    return not thinking


def approved_call(registry: Registry, item: ParsedCall, decision: Any, emit: Callable[[Any], None]) -> ToolCall:
    """Run a call a person decided on: `{"approve": bool, "arguments": dict | None}`."""
    decision = decision if isinstance(decision, dict) else {"approve": bool(decision)}
    name = item.call.name
    if not decision.get("approve"):
        emit(ToolCallStarted(name, item.call.arguments))
        return ToolCall(name, item.call.arguments, "error: a person declined this call; do without it", True)
    edited = decision.get("arguments")
    if edited is None or edited == item.call.arguments:
        return run_call(registry, item, emit)
    record = run_call(registry, ParsedCall(Call(name, dict(edited)), item.raw), emit)
    # The model must learn that what ran is not what it wrote.
    note = f"(a person changed the arguments to {json.dumps(edited, ensure_ascii=False)})\n"
    return replace(record, output=note + record.output)
