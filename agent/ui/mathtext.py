"""LaTeX-ish math as plain readable text, for answers shown on a terminal: `readable_math`.

`$\\frac{1}{2}$` reads `1/2`, `\\boxed{x^{2}}` reads `x²`. Only the common notation models write
in answers is rewritten; anything else is left as it was, so nothing is lost.
"""

from __future__ import annotations

import re

_SYMBOLS = {
    r"\cdot": "·",
    r"\times": "×",
    r"\div": "÷",
    r"\pm": "±",
    r"\mp": "∓",
    r"\leq": "≤",
    r"\le": "≤",
    r"\geq": "≥",
    r"\ge": "≥",
    r"\neq": "≠",
    r"\ne": "≠",
    r"\approx": "≈",
    r"\infty": "∞",
    r"\pi": "π",
    r"\theta": "θ",
    r"\alpha": "α",
    r"\beta": "β",
    r"\lambda": "λ",
    r"\sum": "Σ",
    r"\to": "→",
    r"\rightarrow": "→",
    r"\implies": "⟹",
    r"\circ": "°",
    r"\%": "%",
    r"\,": " ",
    r"\;": " ",
    r"\!": "",
    r"\quad": " ",
    r"\left": "",
    r"\right": "",
    r"\displaystyle": "",
}
_SUPERSCRIPTS = str.maketrans("0123456789+-()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ⁿ")


def _group(text: str, start: int) -> tuple[str, int] | None:
    """The `{...}` group opening at `text[start]` (nested braces allowed) and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i], i + 1
    return None


def _wrap(part: str) -> str:
    # a/b needs no brackets; (a+b)/(c d) does, or it would read differently.
    return part if re.fullmatch(r"[\w.√π]+", part) else f"({part})"


def readable_math(text: str) -> str:
    """LaTeX-ish math as plain readable text: `$\\frac{1}{2}$` → `1/2`, `\\boxed{x^{2}}` → `x²`.

    Only the common notation models write in answers is rewritten; anything else is left as it
    was, so nothing is lost.
    """
    commands = ("boxed", "text", "mathrm", "mathbf", "operatorname", "frac", "dfrac", "tfrac", "sqrt")
    out, i = [], 0
    while i < len(text):
        match = re.match(r"\\([a-zA-Z]+)", text[i:])
        name = match.group(1) if match else ""
        if name in commands:
            first = _group(text, i + len(name) + 1)
            if first is not None:
                inner, after = first
                if name in ("frac", "dfrac", "tfrac"):
                    second = _group(text, after)
                    if second is not None:
                        out.append(f"{_wrap(readable_math(inner))}/{_wrap(readable_math(second[0]))}")
                        i = second[1]
                        continue
                elif name == "sqrt":
                    out.append("√" + _wrap(readable_math(inner)))
                    i = after
                    continue
                else:
                    out.append(readable_math(inner))
                    i = after
                    continue
        out.append(text[i])
        i += 1
    plain = "".join(out)
    for command in sorted(_SYMBOLS, key=len, reverse=True):  # \leq before \le
        plain = re.sub(re.escape(command) + r"(?![a-zA-Z])", _SYMBOLS[command].replace("\\", r"\\"), plain)
    plain = re.sub(
        r"\^\{([0-9n+\-()]+)\}|\^([0-9n])", lambda m: (m.group(1) or m.group(2)).translate(_SUPERSCRIPTS), plain
    )
    plain = re.sub(r"\$\$|\$|\\\(|\\\)|\\\[|\\\]", "", plain)
    return plain
