"""The calculator's vocabulary: the constants, functions and operators the allow-list admits.

`setup` fills `CONSTANTS`, `FUNCTIONS`, `OPERATORS` and `RELATIONS` with sympy objects, wrapped
where sympy would compute something unbounded (towers of powers, huge factorials and binomials
are refused before they are computed) or answer in a form a person does not mean (`factor 360`
as primes, `cbrt(-8)` = -2, `round` half up, `solve` as a list of solutions). The tables stay
empty until `setup` runs, in the worker, so that importing this module does not import sympy.

It does not: parse text (`calc_text`, `calc_parse`), print answers (`calc_format`), or bound
time and memory (the worker process does).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

from tools.registry import ToolError

MAX_BITS = 4_000_000
"""Largest exact power, factorial or binomial computed (about 1.2 million digits)."""

CONSTANTS: dict[str, Any] = {}
FUNCTIONS: dict[str, Callable[..., Any]] = {}
OPERATORS: dict[type, Callable[[Any, Any], Any]] = {}
RELATIONS: dict[type, Callable[[Any, Any], Any]] = {}


class Solutions(list):  # type: ignore[type-arg]
    """sympy's `solve(..., dict=True)` answer: a list of {symbol: value}, printed as sets."""


def setup() -> None:
    """Fill the constant, function and operator tables (imports sympy; runs once, in the worker)."""
    import sympy as sp

    def divide(a: Any, b: Any) -> Any:
        if getattr(b, "is_zero", False):
            raise ToolError("undefined: division by zero")
        return a / b

    def power(base: Any, exponent: Any) -> Any:
        if not (isinstance(base, sp.Expr) and isinstance(exponent, sp.Expr)):
            return base**exponent  # a matrix power: bounded by the timeout
        if base.is_zero and exponent.is_negative:
            raise ToolError("undefined: division by zero (zero to a negative power)")
        if base.is_number and exponent.is_Rational and abs(exponent) > 1 and base not in (0, 1, -1):
            # The bits of the rationals in the base, times the exponent, estimate the exact result's size.
            rationals = base.atoms(sp.Rational)
            size = max((math.log2(abs(r.p) or 1) + math.log2(r.q) for r in rationals), default=0.0)
            if abs(exponent) * size > MAX_BITS:
                shown = "^".join(brief(x) if x.is_Atom else f"({brief(x)})" for x in (base, exponent))
                raise ToolError(f"too large: {shown} has more than {MAX_BITS:,} bits; use logarithms")
        return base**exponent

    def modulo(a: Any, b: Any) -> Any:
        if getattr(b, "is_zero", False):
            raise ToolError("undefined: modulo by zero")
        return sp.Mod(a, b)

    def log(x: Any, base: Any = None) -> Any:
        if getattr(x, "is_zero", False):
            raise ToolError("undefined: log of zero")
        return sp.log(x) if base is None else sp.log(x, base)

    def root(x: Any, n: Any) -> Any:
        # Odd roots of negative reals are the real roots, as a person means by cbrt(-8) = -2.
        if x.is_number and x.is_real and n.is_Integer and n % 2:
            return sp.real_root(x, n)
        return sp.root(x, n)

    def factorial(n: Any) -> Any:
        if n.is_Integer and n > 1 and n * n.p.bit_length() > MAX_BITS:
            raise ToolError(f"too large: {brief(n)}! has more than {MAX_BITS:,} bits")
        return sp.factorial(n)

    def factorial2(n: Any) -> Any:
        if n.is_Integer and n > 1 and n * n.p.bit_length() > 2 * MAX_BITS:
            raise ToolError(f"too large: {brief(n)}!! has more than {MAX_BITS:,} bits")
        return sp.factorial2(n)

    def binomial(n: Any, k: Any) -> Any:
        if n.is_Integer and k.is_Integer and min(k, n - k) * n.p.bit_length() > MAX_BITS:
            raise ToolError(f"too large: binomial({brief(n)}, {brief(k)}) has more than {MAX_BITS:,} bits")
        return sp.binomial(n, k)

    def factor(x: Any, *gens: Any) -> Any:
        if x.is_Integer and abs(x) > 1:  # "factor 360" asks for primes: 2**3*3**2*5
            parts = [sp.Pow(p, e, evaluate=False) if e > 1 else p for p, e in sorted(sp.factorint(x).items())]
            return sp.Mul(*parts, evaluate=False) if len(parts) > 1 else parts[0]
        return sp.factor(x, *gens)

    def solve(*args: Any) -> Any:
        items = [x for a in args for x in (a if isinstance(a, (list, tuple)) else [a])]
        unknowns = [x for x in items if isinstance(x, sp.Symbol)]
        equations = [x for x in items if not isinstance(x, sp.Symbol)]
        if not equations:
            raise ToolError("solve needs an equation, e.g. solve x^2 - 5x + 6 = 0")
        if any(isinstance(e, sp.core.relational.Relational) and not isinstance(e, sp.Eq) for e in equations):
            return sp.solve(equations, *unknowns)  # inequalities: a condition such as -2 < x < 2
        unknowns = unknowns or sorted(set().union(*(e.free_symbols for e in equations)), key=str)
        return Solutions(sp.solve(equations, unknowns, dict=True))

    def matrix(rows: Any) -> Any:
        return sp.Matrix(rows)

    def det(rows: Any) -> Any:
        return sp.Matrix(rows).det()

    def rounded(x: Any, digits: Any = sp.S.Zero) -> Any:
        scale = power(sp.Integer(10), digits)  # exact half-up rounding, no binary floats
        return sp.floor(x * scale + sp.Rational(1, 2)) / scale

    def numeric(x: Any, digits: Any = None) -> Any:
        digits = sp.Integer(15) if digits is None else digits
        if not (digits.is_Integer and 0 < digits <= 1000):
            raise ToolError("evalf(x, digits) needs 1 <= digits <= 1000")
        return sp.N(x, int(digits))

    def gcd(*xs: Any) -> Any:
        return reduce(sp.gcd, xs)

    def lcm(*xs: Any) -> Any:
        return reduce(sp.lcm, xs)

    CONSTANTS.update(
        {"pi": sp.pi, "e": sp.E, "E": sp.E, "i": sp.I, "I": sp.I, "oo": sp.oo, "inf": sp.oo, "infinity": sp.oo}
    )
    FUNCTIONS.update(
        {
            "sqrt": sp.sqrt,
            "cbrt": lambda x: root(x, sp.Integer(3)),
            "root": root,
            "exp": sp.exp,
            "log": log,
            "ln": log,
            "log10": lambda x: log(x, sp.Integer(10)),
            "log2": lambda x: log(x, sp.Integer(2)),
            "sin": sp.sin,
            "cos": sp.cos,
            "tan": sp.tan,
            "cot": sp.cot,
            "sec": sp.sec,
            "csc": sp.csc,
            "asin": sp.asin,
            "acos": sp.acos,
            "atan": sp.atan,
            "acot": sp.acot,
            "asec": sp.asec,
            "acsc": sp.acsc,
            "arcsin": sp.asin,
            "arccos": sp.acos,
            "arctan": sp.atan,
            "atan2": sp.atan2,
            "sinh": sp.sinh,
            "cosh": sp.cosh,
            "tanh": sp.tanh,
            "asinh": sp.asinh,
            "acosh": sp.acosh,
            "atanh": sp.atanh,
            "factorial": factorial,
            "factorial2": factorial2,
            "binomial": binomial,
            "binom": binomial,
            "choose": binomial,
            "gcd": gcd,
            "lcm": lcm,
            "floor": sp.floor,
            "ceil": sp.ceiling,
            "ceiling": sp.ceiling,
            "abs": sp.Abs,
            "Abs": sp.Abs,
            "mod": modulo,
            "sign": sp.sign,
            "re": sp.re,
            "im": sp.im,
            "conjugate": sp.conjugate,
            "arg": sp.arg,
            "max": sp.Max,
            "min": sp.Min,
            "round": rounded,
            "evalf": numeric,
            "numeric": numeric,
            "isprime": sp.isprime,
            "simplify": sp.simplify,
            "expand": sp.expand,
            "factor": factor,
            "solve": solve,
            "diff": sp.diff,
            "differentiate": sp.diff,
            "derivative": sp.diff,
            "integrate": sp.integrate,
            "integral": sp.integrate,
            "limit": sp.limit,
            "lim": sp.limit,
            "sum": sp.summation,
            "summation": sp.summation,
            "product": sp.product,
            "det": det,
            "determinant": det,
            "Matrix": matrix,
            "matrix": matrix,
        }
    )
    OPERATORS.update(
        {
            ast.Add: operator.add,
            ast.Sub: operator.sub,
            ast.Mult: operator.mul,
            ast.Div: divide,
            ast.Pow: power,
            ast.Mod: modulo,
            ast.FloorDiv: lambda a, b: sp.floor(divide(a, b)),
        }
    )
    RELATIONS.update({ast.Eq: sp.Eq, ast.NotEq: sp.Ne, ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge})


def brief(x: Any) -> str:
    """`x` for an error message: numbers too long to read become their size."""
    if getattr(x, "is_Integer", False) and abs(x.p).bit_length() > 200:
        return f"a {int(abs(x.p).bit_length() * 0.30103) + 1:,}-digit integer"
    text = str(x)
    return text if len(text) <= 60 else text[:57] + "..."
