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
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from agent.core.grading import is_equivalent
from agent.core.parse import BadCall, ParsedCall
from agent.core.records import Call, ToolCall, ToolCallStarted
from agent.core.settings import Approval
from agent.models.chatml import CALL_CLOSE, CALL_OPEN, IM_END, IM_START, THINK_CLOSE, neutralize
from tools import Registry, Tool, ToolError


def run_call(registry: Registry, item: ParsedCall | BadCall, emit: Callable[[Any], None]) -> ToolCall:
    """Run one call; mistakes of the model and `ToolError`s become error observations."""
    if isinstance(item, BadCall):
        return ToolCall("", {}, f"error: {item.error}", error=True, ours=True)
    name, arguments = item.call.name, item.call.arguments
    emit(ToolCallStarted(name, arguments))
    if name not in registry:
        known = ", ".join(registry) or "none"
        return ToolCall(
            name,
            arguments,
            f"error: there is no tool named {neutralize(repr(name))}; the tools are: {known}",
            True,
            ours=True,
        )
    began = time.monotonic()
    try:
        output, error = registry[name].invoke(arguments), False
    except ToolError as exc:
        output, error = f"error: {exc}", True
    return ToolCall(name, arguments, output, error, time.monotonic() - began)


MAX_REPETITIONS = 2
"""The second repetition of an identical call ends the episode: the model is asked for its final
answer. (The first is answered with the earlier result, in case the model missed it.)"""


def same_calls(history: list[ToolCall], item: ParsedCall | BadCall) -> list[ToolCall]:
    """The earlier calls of this episode identical to `item` (same tool, same arguments)."""
    if isinstance(item, BadCall):
        return []
    return [c for c in history if c.name == item.call.name and c.arguments == item.call.arguments]


def repeated_call(earlier: list[ToolCall]) -> ToolCall:
    """The observation for a call the model already made: the first result, not another run."""
    first = earlier[0]
    note = (
        f"You already called {first.name} with these arguments ({len(earlier)} time(s)); "
        f"it returned: {first.output if first.ours else neutralize(first.output)}\n"
        "Calling it again gives the same result: use it, try something different, or give your final answer."
    )
    return ToolCall(first.name, first.arguments, note, error=True, ours=True)


_PRINTED = re.compile(r"^print\((.*)\)$", re.DOTALL)
_PLAIN_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _input_of(call: ToolCall) -> str | None:
    """The one text a call computes (an expression, a cell), spaces and a `print()` removed."""
    texts = [v for v in call.arguments.values() if isinstance(v, str)]
    if len(texts) != 1:
        return None
    text = re.sub(r"\s+", "", texts[0])
    printed = _PRINTED.match(text)
    return printed.group(1) if printed else text


def _value_of(output: str) -> str | None:
    """A numeric result as a tool printed it: `65535`, or the calculator's exact part of `29/2 ≈ 14.5`."""
    exact = output.strip().split(" ≈ ")[0].strip()
    return exact if _PLAIN_NUMBER.fullmatch(exact) or re.fullmatch(r"-?\d+/\d+", exact) else None


def contradiction(history: Iterable[ToolCall], record: ToolCall) -> str | None:
    """A note for a result that contradicts an earlier one for the same input, else None.

    A model that asks two tools the same thing and gets two answers (the calculator's `2^16 - 1`
    is 65535, Python's is 13: `^` is XOR there) must not silently take the later one.
    """
    text, value = _input_of(record), _value_of(record.output)
    if record.error or text is None or value is None:
        return None
    for earlier in history:
        before = _value_of(earlier.output)
        if earlier.error or before is None or _input_of(earlier) != text or is_equivalent(value, before):
            continue
        why = " (in Python `^` is XOR; a power is `**`)" if "^" in text and record.name != earlier.name else ""
        return (
            f"note: {earlier.name} gave {before} for the same input; this gives {value}{why}. "
            "Decide which is right before you answer."
        )
    return None


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
        return ToolCall(name, item.call.arguments, "error: a person declined this call; do without it", True, ours=True)
    edited = decision.get("arguments")
    if edited is None or edited == item.call.arguments:
        return run_call(registry, item, emit)
    record = run_call(registry, ParsedCall(Call(name, dict(edited)), item.raw), emit)
    # The model must learn that what ran is not what it wrote.
    note = f"(a person changed the arguments to {json.dumps(edited, ensure_ascii=False)})\n"
    return replace(record, output=note + record.output)


_MARKUP = re.compile(
    r"</?tool_response>|</?tool_call>|" + re.escape(IM_END) + "|" + re.escape(IM_START) + r"(?:user|assistant)?"
)
# How our own texts open (the final-answer request, the repetition notice, our error observations),
# written as a model echoing them writes them: "You've reached the limit for this task ...".
_OUR_OPENINGS = re.compile(
    r"(?:you have|you've|you) (?:already called|reached the limit)|calling it again gives the same result"
    r"|error: (?:the tool call|there is no tool named|a person declined)"
    r"|do not call any more tools|before you finish, check your answer",
    re.IGNORECASE,
)


def is_control_text(answer: str) -> bool:
    """Whether an answer is our own protocol text echoed back, not an answer: tool markup (a
    `<tool_response>` the model imitated), or one of the notices the agent writes to it."""
    text = answer.strip()
    if text.startswith(("<tool_response>", CALL_OPEN, CALL_CLOSE, IM_START)):
        return True
    rest = _MARKUP.sub(" ", text).strip()
    return not rest or bool(_OUR_OPENINGS.match(rest))
