"""The calculator's answers: the exact form first, then ` ≈ ` and a decimal when that adds information.

`answer(value)` prints a sympy result as `29/2 ≈ 14.5`, `{2, 3}` for solutions, lists and
matrices as nested lists; integers over `MAX_DIGITS` digits and exact forms over
`MAX_OUTPUT_CHARS` characters are summarised by their size, so an observation stays short.
Undefined results (`zoo`, `nan`) are refused.

It does not: compute (beyond a decimal approximation), or parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tools.calc_functions import FUNCTIONS, Solutions
from tools.registry import ToolError

MAX_DIGITS = 1000
"""Integers longer than this are summarised instead of printed whole."""
MAX_OUTPUT_CHARS = 2000
"""Exact forms longer than this are summarised; answers longer than twice this are truncated."""


def answer(value: Any) -> str:
    """The exact form, then ` ≈ ` and a 15-digit decimal when that adds information."""
    import sympy as sp

    if isinstance(value, sp.Equality) and value.free_symbols:
        value = FUNCTIONS["solve"](value)  # `x^2 = 4` on its own means: solve it
    if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        value = sp.Matrix(value)
    exact = _render(value, _exact)
    approx = _render(value, lambda leaf: _approx(leaf) or _exact(leaf))
    text = exact if approx == exact else f"{exact} ≈ {approx}"
    if len(text) > 2 * MAX_OUTPUT_CHARS:  # many leaves, each under the cap: an observation must stay short
        return f"{text[:MAX_OUTPUT_CHARS]} ... (truncated, {len(text):,} characters in all)"
    return text


def _render(value: Any, leaf: Callable[[Any], str]) -> str:
    """Print solutions as sets, lists, tuples and matrices as lists, with `leaf` for the numbers."""
    import sympy as sp

    if isinstance(value, Solutions):
        if not value:
            return "no solution found"
        if len({tuple(s) for s in value}) == 1 and len(value[0]) == 1:
            return "{" + ", ".join(leaf(v) for s in value for v in s.values()) + "}"
        return ", ".join("{" + ", ".join(f"{k} = {leaf(v)}" for k, v in s.items()) + "}" for s in value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_render(v, leaf) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, sp.MatrixBase):
        return _render(value.tolist(), leaf)
    return leaf(value)


def _exact(value: Any) -> str:
    import mpmath
    import sympy as sp

    if isinstance(value, sp.Basic) and value.has(sp.zoo, sp.nan):
        raise ToolError("undefined result (division by zero, or an indeterminate form such as 0/0)")
    if isinstance(value, sp.Float):
        return _decimal(value, mpmath.libmp.prec_to_dps(value._prec))
    if isinstance(value, sp.Integer) and value.p.bit_length() > MAX_DIGITS * 3.3:
        digits = sp.integer_log(abs(value), 10)[0] + 1
        if digits > MAX_DIGITS:
            return f"{_decimal(sp.N(value, 15))} (an integer of {digits:,} digits, too long to print)"
    try:
        text = str(value)
    except ValueError:  # Python's int-to-str digit limit: far too long anyway
        text = ""
    if not text or len(text) > MAX_OUTPUT_CHARS:
        return f"(exact form too long to print: {len(text) or 'over 4300'} characters)"
    return text


def _approx(value: Any) -> str | None:
    """A 15-digit decimal for a number whose exact form is not an integer or a decimal already."""
    import sympy as sp

    if not isinstance(value, sp.Expr) or value.is_Integer or value.is_Float or not value.is_number:
        return None
    if value.is_integer or (value.has(sp.I) and all(part.is_Integer for part in value.as_real_imag())):
        return None  # 2**3*3**2*5 or 2*I: the decimal adds nothing
    real, imag = sp.N(value, 15).as_real_imag()
    if not (real.is_Float or real.is_zero) or not (imag.is_Float or imag.is_zero):
        return None  # oo and friends: nothing to add
    if imag.is_zero:
        return _decimal(real)
    if real.is_zero:
        return f"{_decimal(imag)}*I"
    return f"{_decimal(real)} {'-' if imag < 0 else '+'} {_decimal(abs(imag))}*I"


def _decimal(x: Any, digits: int = 15) -> str:
    import mpmath

    return str(mpmath.nstr(x._to_mpmath(x._prec), digits))
