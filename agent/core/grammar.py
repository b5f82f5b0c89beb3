"""A llama.cpp grammar for tool calls, derived from the registered tools' JSON schemas.

Reasoning runs unconstrained; the driver switches to this grammar only once `<tool_call>` is
open (or to force a call), so every call parses and names a real tool while free text pays no
grammar cost. The grammar ends the turn after the last call: llama.cpp then allows only the
end-of-generation token.

This module writes grammar text only; it neither loads a model nor samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.core.transcript import CALL_CLOSE, CALL_OPEN


def call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """JSON schema of one call body: `{"name": <a tool>, "arguments": <its arguments>}`."""
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": t["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return variants[0] if len(variants) == 1 else {"oneOf": variants}


def tool_call_grammar(tools: Sequence[dict[str, Any]], *, opened: bool = True) -> str:
    """GBNF for one or more calls, in the template's layout, ending the turn.

    With `opened`, the grammar starts right after a `<tool_call>` the model wrote itself;
    otherwise it writes `<tool_call>` too, which forces a call.
    """
    if not tools:
        raise ValueError("a tool-call grammar needs at least one tool")
    # Imported here: llama_cpp loads its shared library on import.
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(
        prop_order={"name": 0, "arguments": 1}, allow_fetch=False, dotall=False, raw_pattern=False
    )
    schema = converter.resolve_refs(call_schema(tools), "tools")
    converter.visit(schema, "call")
    one = f'"\\n" call "\\n{CALL_CLOSE}"'
    more = f'("\\n{CALL_OPEN}" {one})*'
    first = one if opened else f'"\\n"? "\\n"? "{CALL_OPEN}" {one}'
    rules = [JSON_CHAR if line.startswith("char ::=") else line for line in converter.format_grammar().splitlines()]
    return "\n".join([f"root ::= {first} {more}", *rules])


# llama-cpp-python's converter lets raw control characters into strings; JSON forbids them, and
# a model given a newline there can write one string forever.
JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
