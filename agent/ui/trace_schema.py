"""What each record of a trace file must hold: `check(record)` type-checks one on load.

A trace is data from outside (a file anyone could have written), so every field the replay and
the page read is checked for its type before use: a whole number where a number is counted, text
where text is shown, and so on. Fields not listed are let through (a newer trace may carry more).
A bad field raises `ValueError` naming it and the type it needs, never repeating its value.

This module only checks; reading the file is `agent.ui.trace.load`, drawing it `trace_html`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Kind = tuple[str, Callable[[Any], bool]]
"""What a field must be: its description, and the test."""

TEXT: Kind = ("text", lambda v: isinstance(v, str))
WHOLE: Kind = ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool))
NUMBER: Kind = (
    "a number",
    lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
)
FLAG: Kind = ("true or false", lambda v: isinstance(v, bool))
OBJECT: Kind = ("an object", lambda v: isinstance(v, dict))
LIST: Kind = ("a list", lambda v: isinstance(v, list))


def optional(kind: Kind) -> Kind:
    """`kind`, or null."""
    return (f"{kind[0]} or null", lambda v: v is None or kind[1](v))


Fields = dict[str, tuple[Kind, bool]]
"""Field name -> (what it must be, whether it must be there)."""

_EVENT: Fields = {"episode": (WHOLE, True), "t": (NUMBER, True)}
_CALL: Fields = {"name": (TEXT, True), "arguments": (OBJECT, True)}
_TOOL_CALL: Fields = {**_CALL, "output": (TEXT, True), "error": (FLAG, True), "seconds": (NUMBER, True)}
_APPROVAL: Fields = {"tool": (TEXT, True), "arguments": (OBJECT, True), "reason": (TEXT, True)}

RECORDS: dict[str, Fields] = {
    "trace": {
        "version": (WHOLE, False),
        "started": (optional(TEXT), False),
        "command": (optional(TEXT), False),
        "model": (optional(OBJECT), False),
    },
    "question": {**_EVENT, "text": (TEXT, True)},
    "prompt": {**_EVENT, "evaluated": (WHOLE, True), "reused": (WHOLE, True), "saved_cache": (optional(FLAG), False)},
    "reasoning": {**_EVENT, "text": (TEXT, True)},
    "answer": {**_EVENT, "text": (TEXT, True)},
    "tool_call": {**_EVENT, **_CALL},
    "observation": {**_EVENT, **_TOOL_CALL},
    "step": {
        **_EVENT,
        **{name: (WHOLE, True) for name in ("step", "prompt_evaluated", "prompt_reused", "generated")},
        "seconds": (NUMBER, False),
        "prefill_seconds": (optional(NUMBER), False),
        "tokens_per_second": (optional(NUMBER), False),
        "context_used": (optional(WHOLE), False),
        "context_size": (optional(WHOLE), False),
    },
    "approval": {**_EVENT, **_APPROVAL},
    "final": {**_EVENT, "result": (OBJECT, True)},
}
"""Every record type, and its fields."""

MODEL: Fields = {"name": (optional(TEXT), False), "context_size": (optional(WHOLE), False)}
RESULT: Fields = {
    "answer": (optional(TEXT), False),
    "reasoning": (TEXT, False),
    "tool_calls": (LIST, False),
    "stats": (OBJECT, False),
    "stop_reason": (TEXT, False),
    "normalized": (optional(TEXT), False),
    "verification": (optional(OBJECT), False),
    "votes": (optional(OBJECT), False),
    "approval": (optional(OBJECT), False),
    "tainted": (FLAG, False),
}
STATS: Fields = {
    **{
        name: (WHOLE, False)
        for name in (
            "steps",
            "tool_calls",
            "prompt_tokens",
            "prompt_evaluated",
            "prompt_reused",
            "generated_tokens",
            "thinking_tokens",
        )
    },
    **{name: (NUMBER, False) for name in ("time_prefill_s", "time_generate_s", "time_tools_s", "time_total_s")},
    "per_step": (LIST, False),
}


def check(record: Any) -> None:
    """Raise `ValueError` unless `record` is a trace record whose fields have their types."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        raise ValueError("not a trace record (an object with a text `type`)")
    fields = RECORDS.get(record["type"])
    if fields is None:
        raise ValueError(f"unknown record type {record['type'][:40]!r}")
    _check(record, fields, "")
    if record["type"] == "trace" and record.get("model") is not None:
        _check(record["model"], MODEL, "model.")
    if record["type"] == "final":
        result = record["result"]
        _check(result, RESULT, "result.")
        for number, call in enumerate(result.get("tool_calls") or ()):
            if not isinstance(call, dict):
                raise ValueError(f"result.tool_calls[{number}] must be an object")
            _check(call, _TOOL_CALL, f"result.tool_calls[{number}].")
        _check(result.get("stats") or {}, STATS, "result.stats.")
        if result.get("approval") is not None:
            _check(result["approval"], _APPROVAL, "result.approval.")


def _check(values: dict[str, Any], fields: Fields, prefix: str) -> None:
    for name, ((what, test), required) in fields.items():
        if name not in values:
            if required:
                raise ValueError(f"{prefix}{name} is missing")
            continue
        if not test(values[name]):
            raise ValueError(f"{prefix}{name} must be {what}, not {_kind(values[name])}")


def _kind(value: Any) -> str:
    """A value's JSON kind, without the value (it came from outside)."""
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "a number that is not finite"
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text", list: "a list"}.get(
        type(value), "an object"
    )
