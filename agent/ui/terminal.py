"""Text from a model, a tool, a trace or a session made safe to show on a terminal.

`printable(text)` writes every character a terminal would act on instead of showing as a
visible escape: C0 controls other than newline and tab (ESC, so every CSI and OSC sequence:
window titles, the OSC 52 clipboard; BEL, carriage return, backspace), DEL, the C1 controls
(U+0080–U+009F, which some terminals read as CSI and OSC too), the bidi overrides and isolates
that reorder what is seen (U+202A–U+202E, U+2066–U+2069), and lone surrogates (which cannot be
encoded at all). ESC becomes `\\x1b`, U+202E becomes `\\u202e`. `printable_json(value)` is
`json.dumps` with the same characters written as JSON escapes, so it still parses to the same
value. Every view of outside text on a terminal goes through one of them: the rich and plain
views, `trace show`, `sessions`, the approval prompt, the answer on stdout.

This module only escapes; it does not decide what is shown, and leaves the view's own colour
codes alone (they are added after escaping).
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every character a terminal would act on written as a visible escape."""
    return _UNSAFE.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable_json(value: Any, **options: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, **options)`, with those characters as `\\uXXXX` escapes.

    They can only stand inside JSON strings, where the escape means the same character.
    """
    return _UNSAFE.sub(_json_escape, json.dumps(value, ensure_ascii=False, **options))
