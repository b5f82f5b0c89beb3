"""A llama.cpp grammar for tool calls, derived from the registered tools' JSON schemas.

Reasoning runs unconstrained; the driver switches to this grammar only once `<tool_call>` is
open (or to force a call), so every call parses and names a real tool while free text pays no
grammar cost. The grammar ends the turn after the last call: llama.cpp then allows only the
end-of-generation token.

Nothing in it runs away: a turn holds at most `MAX_CALLS_PER_TURN` calls, every string and
array has the bound its schema gives (`maxLength`, `maxItems`; the registry's defaults where a
tool says none, see `tools.registry.with_bounds`), numbers have at most 16 digits per part, and
whitespace is the template's own layout (`laid_out`). Only nesting depth is free (an arbitrary JSON value inside an
untyped argument), each level of it bounded.

This module writes grammar text only; it neither loads a model nor samples.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agent.core.transcript import CALL_CLOSE, CALL_OPEN
from tools.registry import DEFAULT_MAX_ITEMS, DEFAULT_MAX_LENGTH, with_bounds

MAX_CALLS_PER_TURN = 4
"""Calls one turn may write; a turn of more is a model repeating itself (see `agent.core.turn`)."""


def call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """JSON schema of one call body: `{"name": <a tool>, "arguments": <its arguments>}`."""
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": with_bounds(t["function"].get("parameters") or {"type": "object"}),
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
    from llama_cpp.llama_grammar import PRIMITIVE_RULES, RESERVED_NAMES, SchemaConverter

    class Bounded(SchemaConverter):  # type: ignore[misc]
        """llama.cpp's converter, writing a string's bound as `char{0,N}`.

        Its own form nests N optional groups, which llama.cpp parses recursively: thousands deep
        for a Python cell.
        """

        def visit(self, schema: dict[str, Any], name: str) -> str:
            fixed = any(k in schema for k in ("enum", "const", "format", "$ref"))
            shape = CLASSES.fullmatch(schema.get("pattern", "")) if "pattern" in schema else None
            if (
                schema.get("type") != "string"
                or "maxLength" not in schema
                or fixed
                or ("pattern" in schema and not shape)
            ):
                made = str(super().visit(schema, name))
                values = schema["enum"] if "enum" in schema else [schema["const"]] if "const" in schema else [0]
                if schema.get("type") == "string" or all(isinstance(v, str) for v in values):
                    strings.add(made)
                return made
            least, most = int(schema.get("minLength", 0)), int(schema["maxLength"])
            first = ""
            if shape is None:
                char = self._add_primitive("char", PRIMITIVE_RULES["char"])
            else:  # `^[a-z][^{}#]*$`: a first character from a class, then JSON characters but some
                banned = "".join(f"\\x{ord(c):02X}" for c in shape.group(2).replace("\\", ""))
                char = self._add_rule(f"{name}-char", JSON_CHAR_EXCEPT.format(banned))
                if shape.group(1):
                    first, least, most = f"[{shape.group(1)}] ", max(0, least - 1), most - 1
            rule = f'"\\"" {first}{char}{{{least},{most}}} "\\"" space'
            made = str(self._add_rule(name + "-" if name in RESERVED_NAMES else name or "root", rule))
            strings.add(made)
            return made

    strings: set[str] = {"string"}  # rules of strings
    converter = Bounded(prop_order={"name": 0, "arguments": 1}, allow_fetch=False, dotall=False, raw_pattern=False)
    schema = converter.resolve_refs(call_schema(tools), "tools")
    converter.visit(schema, "call")
    one = f'"\\n" call "\\n{CALL_CLOSE}"'
    more = f'("\\n{CALL_OPEN}" {one}){{0,{MAX_CALLS_PER_TURN - 1}}}'
    first = one if opened else f'"\\n"? "\\n"? "{CALL_OPEN}" {one}'
    rules = [BOUNDED_PRIMITIVES.get(line.split(" ::= ")[0], line) for line in converter.format_grammar().splitlines()]
    return "\n".join(
        [f"root ::= {first} {more}", *(laid_out(r, strings) for r in rules if not r.startswith("space ::="))]
    )


def laid_out(rule: str, strings: set[str]) -> str:
    """A rule of the converter's in the template's own layout: `{"a": 1, "b": [2, 3]}`.

    That is how `tojson` renders the calls of the prompt's examples. Free whitespace let a small
    model drift from them (`{ "expression": ` and then a lone space token): out of the examples'
    context, it wrote `".2^16 - 1"` and dropped parentheses; in it, its favourite token after
    `"expression":` is ` "(` (space, quote, parenthesis), and the expression comes as asked.
    The space before a string is written (its token is ` "`, see `LazyGrammarSampler`); before
    a number it is optional, as SmolLM2 has no ` 1` token and, forced to a bare space, wrote `-12`.
    """
    rule = re.sub(r'":" space (\S+)', lambda m: f'":" " " {m[1]}' if m[1] in strings else f'":" " "? {m[1]}', rule)
    rule = rule.replace('"," space ', '", " ')
    return re.sub(r" +", " ", re.sub(r"(?<= )space(?= |$)", "", rule)).rstrip()


CLASSES = re.compile(r"\^(?:\[([^\]\\^\"][^\]\\\"]*)\])?\[\^([^\]\\]+)\]\*\$")
"""The patterns a grammar bounds by `maxLength` like a plain string: characters but some
(`^[^{}#]*$`), after a first one from a class (`^[0-9(][^{}#]*$`). Others are left to llama.cpp's
converter, which bounds them only as their quantifiers do."""
# llama-cpp-python's converter lets raw control characters into strings; JSON forbids them, and a
# model given a newline there can write one string forever.
JSON_CHAR_EXCEPT = r'[^"\\\x7F\x00-\x1F{}] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{{4}})'
_MORE = DEFAULT_MAX_ITEMS - 1
BOUNDED_PRIMITIVES = {
    "char": "char ::= " + JSON_CHAR_EXCEPT.format(""),
    # The free JSON values of an untyped argument, each bounded as the registry's defaults are.
    "string": f'string ::= "\\"" char{{0,{DEFAULT_MAX_LENGTH}}} "\\"" space',
    "array": f'array ::= "[" space ( value ("," space value){{0,{_MORE}}} )? "]" space',
    "object": (
        f'object ::= "{{" space ( string ":" space value ("," space string ":" space value){{0,{_MORE}}} )? "}}" space'
    ),
}
"""Rules of the converter's built-in primitives, replaced by bounded ones (by rule name)."""


def answer_grammar() -> str:
    """GBNF for a final answer: some text, never a tag (`<tool_call>`, `<tool_response>`, `<|im_end|>`).

    Used when the answer is due (a budget or a loop ended the episode): a model that could open a
    call there (or imitate a tool response, as the embedded model does) wrote no answer at all.
    A `<` stays possible where no tag can start: before a space, a digit, `=`, `.` or `-`.
    """
    return "\n".join(
        [
            'root ::= [ \\n]{0,2} [^< \\t\\n] (text | "<" [ 0-9=.-])*',
            "text ::= [^<]",
        ]
    )
