r"""Math answers: pull the final answer out of a model's text, and decide whether two answers agree.

`extract_answer` finds the answer a model gave: the last `\boxed{...}` (nested braces), a GSM8K
`#### 42`, a "Final Answer:" or "the answer is" line, else the last line (or the last number in
it, when that line is a sentence). `normalize` writes an answer in one canonical form: no `$`,
`\boxed`, `\text{}`, currency marks, unit words, thousands separators or `x =` prefix.
`is_equivalent(pred, ref)` decides whether two answers are the same mathematically: equal
numbers in any notation (`1,000`, `$1000.00`, `\frac{1}{2}` and `0.5`, `50%` and `50` or
`0.5`), tuples and intervals in order, sets and solution lists in any order, and expressions
whose difference simplifies to zero. Numbers compare as Qwen2.5-Math's evaluation compares them:
equal within a relative tolerance of 1e-4 (`3.1416` is `\pi`), never because one is the other
rounded (`0.33` is not `\frac{1}{3}`, `3.14` is not `\pi`).

Safety: model text never reaches `eval`, `sympify` or `parse_expr`. Plain numbers are parsed
here with `fractions`; anything symbolic goes to the calculator tool (`tools.calculator`), whose
allow-list parser runs in its own bounded worker process, so a hostile or huge answer costs at
most the calculator's timeout. (math-verify was considered: its expression path calls sympy's
`parse_expr` on model text, which runs Python code, so it is not used.)

It does not grade free text beyond a case-insensitive match, nor units beyond dropping them
(`5 km` and `5000 m` differ), nor equivalence that needs an assumption (`sqrt(x^2)` vs `x`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

__all__ = ["extract_answer", "is_equivalent", "normalize"]

MAX_SYMBOLIC_CHARS = 300
"""Longer answers are compared as text only: nobody's final answer is a page of algebra."""

# ---------------------------------------------------------------------------------------------
# Extraction


def _braced(text: str, start: int) -> str | None:
    """The contents of the `{...}` opening at `start`, nested braces included; None if unclosed."""
    depth = 0
    for k in range(start, len(text)):
        if text[k] == "{" and (k == 0 or text[k - 1] != "\\"):
            depth += 1
        elif text[k] == "}" and (k == 0 or text[k - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : k]
    return None


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")


def _last_boxed(text: str) -> str | None:
    found = None
    for match in _BOXED.finditer(text):
        if text[match.end() : match.end() + 1] == "{":
            inner = _braced(text, match.end())
            if inner is not None:
                found = inner
        else:  # `\boxed 5`: one token
            token = re.match(r"[^\s$]+", text[match.end() :])
            found = token.group() if token else found
    return found


_MARKERS = [
    re.compile(r"####\s*(.+)"),
    re.compile(r"final answer\s*(?:is|:)?\s*[:：]?\s*(.+)", re.IGNORECASE),
    re.compile(r"\banswer(?: is|:)\s*[:：]?\s*(.+)", re.IGNORECASE),
]
_MARKUP = re.compile(r"<(tool_call|tool_response)>.*?</\1>|</?(?:tool_call|tool_response|think)>", re.DOTALL)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?%?|-?\.\d+%?")
_WORD = re.compile(r"[A-Za-z]{4,}")
_MATH_WORDS = {"sqrt", "frac", "dfrac", "tfrac", "infty", "text", "mathrm", "boxed", "cdot", "times", "left", "right"}


def extract_answer(text: str) -> str:
    r"""The final answer in a model's output, as written (not normalized); "" if there is none.

    Looks, in order, for the last `\boxed{}`, a `#### answer` line, the last "Final Answer:" or
    "the answer is", and else the last non-empty line; a line that is a sentence gives its last
    number.
    """
    if not text or not text.strip():
        return ""
    text = text.split("</think>")[-1] if "</think>" in text and text.split("</think>")[-1].strip() else text
    # Tool markup in an answer is the model imitating the transcript, not its answer.
    text = _MARKUP.sub(" ", text)
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for marker in _MARKERS:
        matches = list(marker.finditer(text))
        if matches:
            line = matches[-1].group(1).strip()
            return _answer_of_line(line)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return _answer_of_line(lines[-1]) if lines else ""


def _answer_of_line(line: str) -> str:
    """A marker's or last line's answer: the whole line if it reads as math, else its last number."""
    line = re.sub(r"\*\*|__", "", line).strip()
    line = line.split(" ≈ ")[0].strip()  # the calculator's `29/2 ≈ 14.5`: the exact form
    boxed = _last_boxed(line)
    if boxed is not None:
        return boxed.strip()
    if re.fullmatch(r"\$[^$]+\$\.?", line):  # `$\frac{1}{2}$.`: one math span
        return line.rstrip(".").strip("$").strip()
    words = [w for w in _WORD.findall(line) if w.lower() not in _MATH_WORDS]
    if not words:
        return line.rstrip(".").strip()
    numbers = _NUMBER.findall(line)
    if numbers:
        return numbers[-1].rstrip(".,")
    return line.rstrip(".").strip()


# ---------------------------------------------------------------------------------------------
# Normalization

_UNITS = (
    r"dollars?|cents?|euros?|pounds?|yuan|yen|rupees?|usd|eur|percent|per\s*cent|"
    r"units?|degrees?|deg|°|mph|km/h|kmh|m/s|kg|g|grams?|mg|lbs?|ounces?|oz|tons?|"
    r"km|cm|mm|m|meters?|metres?|miles?|inch(?:es)?|feet|foot|ft|yards?|yd|"
    r"liters?|litres?|l|ml|gallons?|cups?|"
    r"hours?|hrs?|h|minutes?|mins?|seconds?|secs?|s|days?|weeks?|months?|years?|"
    r"sq|square|cubic|people|persons?|students?|apples?|pages?|points?|times|items?|pieces?|"
    r"boxes?|bags?|eggs?|books?|marbles?|cookies?|pencils?|balls?"
)
_TRAILING_UNIT = re.compile(rf"^(.*?\d)\s*(?:(?:{_UNITS})\b\.?\s*(?:\^?\d|²|³)?\s*)+$", re.IGNORECASE)
_LEADING_VARIABLE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?!=)(.+)$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def normalize(answer: str) -> str:
    r"""`answer` in a canonical written form, for display and for comparing as text.

    Drops `$`, `\boxed{}`, `\text{}` wrappers, `\left`/`\right`, spacing commands, currency
    marks, trailing unit words, degree marks, thousands separators, a trailing period and an
    `x =` prefix; writes `\dfrac` as `\frac`, `\frac{1}{2}` with plain numbers as `1/2`, and
    `−` as `-`. Whitespace is removed.
    """
    s = str(answer).strip()
    boxed = _last_boxed(s)
    if boxed is not None:
        s = boxed
    s = s.replace("−", "-").replace("–", "-").replace("\u00a0", " ")
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}", r" \1 ", s)
    s = re.sub(r"\\(?:left|right)\b|\\[,;:! ]|\\(?:displaystyle|quad|qquad)\b", " ", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = s.replace("\\$", "$").replace("\\%", "%").replace("$", "").replace("€", "").replace("£", "")
    s = re.sub(r"\^\s*\{?\\circ\}?|°", "", s)
    s = s.strip().rstrip(".").strip()
    variable = _LEADING_VARIABLE.match(s)
    if variable and "=" not in variable.group(1) and "," not in variable.group(1):
        s = variable.group(1)
    s = re.sub(r"^(?:the answer is|answer:?)\s*", "", s, flags=re.IGNORECASE)
    s = re.sub(r"(\d)\s*(?:percent|per\s*cent)\b", r"\1%", s, flags=re.IGNORECASE)  # a percent form, not a unit
    unit = _TRAILING_UNIT.match(s)
    if unit:
        s = unit.group(1)
    s = re.sub(r"\s+", "", s)
    if _THOUSANDS.match(s.rstrip("%")):
        s = s.replace(",", "")
    s = re.sub(r"\\frac\{(-?\d+)\}\{(-?\d+)\}", r"\1/\2", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\1/\2", s)
    if re.fullmatch(r"\(([A-Ea-e])\)", s):  # multiple choice: `(B)` is `B`
        s = s[1]
    return s


# ---------------------------------------------------------------------------------------------
# Equivalence

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FRACTION = re.compile(r"([+-]?\d+)/([+-]?\d+)")


REL_TOL = 1e-4
"""Numbers this close, relative to the larger, are equal: Qwen2.5-Math's `math_equal` (isclose)."""


@dataclass(frozen=True)
class _Number:
    """A numeric answer as written."""

    value: Fraction
    """Its exact value (a decimal's digits taken exactly)."""
    percent: bool = False
    """Written with a percent sign: `50%` may mean 50 or 0.5."""


def _number(s: str) -> _Number | None:
    """A plain number (integer, decimal, a/b, percent) parsed without any evaluation; else None."""
    percent = s.endswith("%")
    body = s[:-1] if percent else s
    if _DECIMAL.fullmatch(body):
        try:
            return _Number(Fraction(body), percent)
        except (ValueError, ZeroDivisionError, OverflowError):
            return None
    fraction = _FRACTION.fullmatch(body)
    if fraction and int(fraction.group(2)) != 0:
        return _Number(Fraction(int(fraction.group(1)), int(fraction.group(2))), percent)
    return None


def _close(a: Fraction, b: Fraction) -> bool:
    """`math.isclose(a, b, rel_tol=1e-4)`, exactly: no rounding makes two numbers equal."""
    return abs(a - b) <= Fraction(str(REL_TOL)) * max(abs(a), abs(b))


def _same_number(a: _Number, b: _Number) -> bool:
    if _close(a.value, b.value):  # `50%` vs `50`: the usual grading
        return True
    if a.percent == b.percent:
        return False
    # `50%` vs `0.5`. Qwen2.5-Math also takes ref/100 and ref*100 when neither side says
    # "percent", so that 5 and 500 agree; a GSM8K count is not a percentage, so we ask for the sign.
    p, q = (a, b) if a.percent else (b, a)
    return _close(p.value / 100, q.value)


def is_equivalent(pred: str | None, ref: str | None) -> bool:
    r"""Whether a predicted answer means the same as a reference answer.

    Both may be LaTeX or plain text, with or without `\boxed{}`. Numbers compare by value, within
    a relative tolerance of 1e-4; tuples and intervals compare
    element by element in order, `\{...\}` sets and bare lists (`2, 3`) in any order; other
    expressions are equal when the calculator simplifies their difference to 0. Text compares
    case-insensitively. Never raises on odd input: it is simply not equivalent.
    """
    if pred is None or ref is None:
        return False
    a, b = normalize(pred), normalize(ref)
    if not a or not b:
        return False
    return _equivalent(a, b, depth=0)


_ASSIGNED = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?=([^=]+)$")


def _equivalent(a: str, b: str, depth: int) -> bool:
    if a == b or a.casefold() == b.casefold():
        return True
    if ("=" in a) != ("=" in b):  # `x=2` inside a list of solutions against a bare `2`
        a, b = (m.group(1) if (m := _ASSIGNED.match(s)) else s for s in (a, b))
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return _same_number(na, nb)
    if depth < 2:
        sa, sb = _structure(a), _structure(b)
        if sa is not None or sb is not None:
            return sa is not None and sb is not None and _same_structure(sa, sb, depth)
    if "=" in a and "=" in b:  # equations: both sides alike (`y = 2x + 1` vs `y = 1 + 2x`)
        la, _, ra = a.partition("=")
        lb, _, rb = b.partition("=")
        return _equivalent(la, lb, depth + 1) and _equivalent(ra, rb, depth + 1)
    if na is not None or nb is not None:  # a plain number and an expression: compare values
        number, value = (na, _calculated(b)) if na is not None else (nb, _calculated(a))
        return value is not None and number is not None and _same_number(number, value)
    return _symbolically_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Tuples, intervals, sets


@dataclass(frozen=True)
class _Structure:
    opening: str
    closing: str
    items: tuple[str, ...]
    ordered: bool


def _split_top(s: str) -> list[str]:
    """`s` split at commas outside brackets."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:k])
            start = k + 1
    parts.append(s[start:])
    return parts


def _enclosed(s: str) -> bool:
    """Whether `s` is one bracketed group (its first bracket closes at its end)."""
    depth = 0
    for k, ch in enumerate(s):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and k < len(s) - 1:
            return False
    return depth == 0


def _structure(s: str) -> _Structure | None:
    """A tuple, interval, set or bare list; None for a single value."""
    if s.startswith("\\{") and s.endswith("\\}"):
        return _Structure("{", "}", tuple(_split_top(s[2:-2])), ordered=False)
    if len(s) >= 2 and s[0] in "([{" and s[-1] in ")]}" and _enclosed(s):
        items = _split_top(s[1:-1])
        if s[0] == "{":
            return _Structure("{", "}", tuple(items), ordered=False)
        if len(items) > 1:
            return _Structure(s[0], s[-1], tuple(items), ordered=True)
        return None
    items = _split_top(s)
    if len(items) > 1:
        return _Structure("", "", tuple(items), ordered=False)
    return None


def _same_structure(x: _Structure, y: _Structure, depth: int) -> bool:
    if len(x.items) != len(y.items):
        return False
    if x.ordered or y.ordered:
        if not (x.ordered and y.ordered) or (x.opening, x.closing) != (y.opening, y.closing):
            return False  # `(1, 2)` is not `[1, 2]` (intervals), nor an unordered set
        return all(_equivalent(p, q, depth + 1) for p, q in zip(x.items, y.items, strict=True))
    left = list(y.items)
    for item in x.items:
        match = next((k for k, other in enumerate(left) if _equivalent(item, other, depth + 1)), None)
        if match is None:
            return False
        left.pop(match)
    return True


# ---------------------------------------------------------------------------------------------
# Expressions, through the calculator's bounded worker


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth < 0:
            return False
    return depth == 0


def _calculator_ready(s: str) -> bool:
    return 0 < len(s) <= MAX_SYMBOLIC_CHARS and _balanced(s) and "\n" not in s and ";" not in s


@lru_cache(maxsize=4096)
def _calculate(expression: str) -> str | None:
    """The calculator's answer, or None when it refuses or fails (never raises)."""
    from tools.calculator import calculate
    from tools.registry import ToolError

    try:
        return calculate(expression)
    except ToolError:
        return None


def _calculated(s: str) -> _Number | None:
    r"""The numeric value of an expression such as `\sqrt{2}/2` (15 digits), or None if it has none."""
    if not _calculator_ready(s):
        return None
    answer = _calculate(s)
    if answer is None:
        return None
    exact, _, approx = answer.partition(" ≈ ")
    value = _number(exact.strip()) or _number(approx.strip())
    if value is None:
        return None
    return _Number(value.value)  # the calculator's 15 digits stand for the exact value


def _symbolically_equal(a: str, b: str) -> bool:
    """Whether the calculator simplifies `(a) - (b)` to 0."""
    if not (_calculator_ready(a) and _calculator_ready(b)):
        return False
    if "=" in a or "=" in b or "<" in a + b or ">" in a + b:
        return False
    answer = _calculate(f"simplify(({a}) - ({b}))")
    if answer is None:
        return False
    exact, _, approx = answer.partition(" ≈ ")
    if exact.strip() == "0":
        return True
    value = _number(approx.strip()) if approx else None
    return value is not None and value.value == 0 and math.isfinite(float(value.value))
