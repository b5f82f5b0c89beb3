"""The calculator tool: exact, safe, bounded symbolic math on sympy.

`calculate` takes what a model naturally writes (arithmetic with `^`, implicit multiplication,
percentages, thousands separators, LaTeX, function calls, and commands such as
`solve x^2 - 5x + 6 = 0`) and answers with the exact result, then ` ≈ ` and a decimal when the
exact form is not an integer: `29/2 ≈ 14.5`. Decimals in the input are exact (`0.1` is `1/10`).

Safe: model text never reaches `eval`, `sympify` or `parse_expr` (all three run Python code). It
is normalised as text, parsed with `ast`, and an allow-list walk builds sympy objects from
numbers, operators, the constants and functions in `FUNCTIONS`, and plain symbols. Anything else
is refused with `ToolError("disallowed syntax: ...")`.

Bounded: evaluation runs in one long-lived child process (started on first use, restarted after
a timeout or crash) under a wall-clock timeout and an address-space cap; obvious bombs (towers of
powers, huge factorials) are refused before they are computed. Requests and answers cross the
pipe as JSON text, never as pickles.

It does not: keep variables between calls, plot, do statistics or numeric root finding, accept
LaTeX beyond arithmetic (`\\frac`, `\\sqrt`, `\\binom`, `\\cdot`, ...), or run on Windows (the
worker needs POSIX pipes and `resource`).
"""

from __future__ import annotations

import ast
import atexit
import io
import json
import keyword
import math
import operator
import os
import re
import select
import subprocess
import sys
import threading
import time
import tokenize
from collections.abc import Callable
from functools import reduce
from pathlib import Path
from typing import Any

from tools.registry import ToolError, tool

TIMEOUT_SECONDS = 5.0
"""Wall-clock limit of one evaluation; the worker is killed and restarted past it."""
STARTUP_SECONDS = 30.0
"""Limit for the worker to import sympy and report ready (slow CI disks)."""
MEMORY_BYTES = 512 << 20
"""Address-space cap (RLIMIT_AS) of the worker process."""
MAX_INPUT_CHARS = 2000
"""Longest expression accepted; also bounds parse depth and normalisation work."""
MAX_BITS = 4_000_000
"""Largest exact power, factorial or binomial computed (about 1.2 million digits)."""
MAX_DIGITS = 1000
"""Integers longer than this are summarised instead of printed whole."""
MAX_OUTPUT_CHARS = 2000
"""Exact forms longer than this are summarised; answers longer than twice this are truncated."""


# ---------------------------------------------------------------------------------------------
# Text normalisation: what a model writes -> Python expression syntax (parsed, never evaluated)

_UNICODE = {
    "×": "*",
    "·": "*",
    "⋅": "*",
    "÷": "/",
    "−": "-",
    "–": "-",
    "π": " pi ",
    "√": " sqrt ",
    "²": "^2",
    "³": "^3",
    "∞": " oo ",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
    "\n": " ",
}
_LATEX_WITH_ARGS = re.compile(r"\\(?:[dt]?frac|[dt]?binom|sqrt)")
_LATEX_WORDS = [
    (re.compile(r"\\left|\\right|\\[,;:! ]|\$"), " "),
    (re.compile(r"\\(?:cdot|times)"), "*"),
    (re.compile(r"\\div"), "/"),
    (re.compile(r"\\infty"), " oo "),
    (re.compile(r"\\(?:leq?)\b"), "<="),
    (re.compile(r"\\(?:geq?)\b"), ">="),
    (re.compile(r"\\(?:neq?)\b"), "!="),
    (re.compile(r"\\operatorname\{(\w+)\}"), r" \1"),
    (re.compile(r"\\([a-zA-Z]+)"), r" \1 "),  # \pi, \sin, \ln: the name without its backslash
]
# A percent sign is a percentage when no operand follows it (`15%`, `15% of 80`), else modulo.
_PERCENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*%(?=\s*(?:of\b|[^\w\s(.]|$))")
_EQUALS = re.compile(r"(?<![<>=!:])=(?!=)")
_COMMAND = re.compile(
    r"^(simplify|expand|factor|solve|diff|differentiate|derivative|integrate|integral|limit|det"
    r"|determinant|evaluate|calculate|compute)\b\s*(.*)$",
    re.IGNORECASE,
)
_VARIABLES = r"([a-zA-Z]\w*(?:\s*,\s*[a-zA-Z]\w*)*)"
_FOR_VARIABLES = re.compile(rf"\s+(?:for|wrt|with respect to)\s+{_VARIABLES}\s*$")
_LEADING_FOR = re.compile(rf"^for\s+{_VARIABLES}\s*[:,]\s*(.*)$")
_LIMIT_POINT = re.compile(r"\s+as\s+([a-zA-Z]\w*)\s*(?:->|→|to)\s*(.+)$")


def _normalize(text: str) -> str:
    """Rewrite model notation as Python expression syntax; the result is only ever parsed."""
    for old, new in _UNICODE.items():
        text = text.replace(old, new)
    text = _expand_latex(text)
    for pattern, replacement in _LATEX_WORDS:
        text = pattern.sub(replacement, text)
    text = text.replace("{", "(").replace("}", ")").replace("^", "**").strip().rstrip("=").strip()
    text = _command(text)
    text = re.sub(r"\bmod\b(?!\s*\()", "%", text)
    text = _PERCENT.sub(r"(\1/100)", text)
    text = re.sub(r"\bof\b", "*", text)
    return _EQUALS.sub("==", text)


def _command(text: str) -> str:
    """`solve x^2 = 4 for x` -> `solve(x^2 = 4, x)`; a command already called like a function stays."""
    match = _COMMAND.match(text)
    if not match:
        return text
    word, rest = match.group(1).lower(), match.group(2).strip()
    if rest.startswith("(") and _closing(rest, 0) == len(rest) - 1:
        return text if word not in ("evaluate", "calculate", "compute") else rest
    if word in ("evaluate", "calculate", "compute"):
        return rest
    rest = _FOR_VARIABLES.sub(r", \1", re.sub(r"^of\s+", "", rest))
    rest = _LEADING_FOR.sub(r"\2, \1", rest)  # `solve for x: 2x + 3 = 7`
    rest = _LIMIT_POINT.sub(r", \1, \2", rest)  # `limit sin(x)/x as x -> 0`
    if word.startswith("integr"):
        rest = re.sub(r"\s*\bd([a-zA-Z])\s*$", r", \1", rest)  # `integrate x^2 dx`
    if word == "solve":
        rest = re.sub(r"\s+and\s+", ", ", rest)
    return f"{word}({rest})"


def _closing(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, or -1."""
    depth = 0
    for k in range(start, len(text)):
        depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return k
    return -1


def _expand_latex(text: str) -> str:
    r"""The LaTeX commands with brace arguments: `\frac{a}{b}` -> `((a)/(b))`, `\binom`, `\sqrt[n]{x}`."""
    out, i = [], 0
    while match := _LATEX_WITH_ARGS.search(text, i):
        out.append(text[i : match.start()])
        name, j, index = match.group(), match.end(), None
        if name == r"\sqrt" and text[j : j + 1] == "[":
            close = text.find("]", j)
            if close < 0:
                raise ToolError(r"syntax error: \sqrt[ has no closing ]")
            index, j = _expand_latex(text[j + 1 : close]), close + 1
        args = []
        for _ in range(1 if name == r"\sqrt" else 2):
            while text[j : j + 1] == " ":
                j += 1
            if j >= len(text):
                raise ToolError(f"syntax error: {name} is missing an argument")
            end = _closing(text, j) if text[j] == "{" else j
            if end < 0:
                raise ToolError(f"syntax error: unbalanced braces after {name}")
            args.append(_expand_latex(text[j + 1 : end] if text[j] == "{" else text[j]))
            j = end + 1
        if name.endswith("frac"):
            out.append(f"(({args[0]})/({args[1]}))")
        elif name.endswith("binom"):
            out.append(f"binomial({args[0]}, {args[1]})")
        else:
            out.append(f"sqrt({args[0]})" if index is None else f"root({args[0]}, {index})")
        i = j
    out.append(text[i:])
    return "".join(out)


def _is_number(token: str) -> bool:
    return token[:1].isdigit() or (token[:1] == "." and token[1:2].isdigit())


def _is_name(token: str) -> bool:
    return token.isidentifier() and not keyword.iskeyword(token)


def _retokenize(text: str) -> str:
    """Token-level rewrites: thousands separators, postfix `!`, `sqrt 2`, implicit multiplication."""
    out: list[str] = []
    for s in _join_thousands(text):
        prev = out[-1] if out else ""
        if s == "!":
            start = _operand_start(out)
            out[start:] = ["factorial", "(", *out[start:], ")"]
            continue
        if prev in FUNCTIONS and (_is_number(s) or _is_name(s)):
            out += ["(", s, ")"]  # `sqrt 2`, `ln x`: a function applied to one atom
            continue
        # `x(x+1)` with a one-letter name is a product; a longer unknown name is an unknown function.
        unknown_call = _is_name(prev) and prev not in _CONSTANTS and len(prev) > 1
        call = s == "(" and (prev in FUNCTIONS or unknown_call)
        prev_operand = _is_number(prev) or prev == ")" or (_is_name(prev) and prev not in FUNCTIONS)
        operand = _is_number(s) or _is_name(s) or s == "("
        if prev_operand and operand and not call and not (_is_number(prev) and _is_number(s)):
            out.append("*")
        out.append(s)
    return " ".join(out)


def _join_thousands(text: str) -> list[str]:
    """Tokens of `text`, with `1,000,000` as one number where a comma cannot separate arguments:
    outside calls and lists, and not after another comma (a tuple such as `(k, 1, 100)`)."""
    try:
        raw = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.string.strip()]
    except tokenize.TokenError:
        raise ToolError("syntax error: unbalanced parentheses") from None
    except IndentationError as exc:
        raise ToolError(f"syntax error: {exc.msg}") from None
    out: list[str] = []
    brackets: list[bool] = []  # per open bracket: is it a grouping parenthesis?
    for k, tok in enumerate(raw):
        s = tok.string
        if (
            k >= 2
            and raw[k - 1].string == ","
            and raw[k - 2].end == raw[k - 1].start
            and raw[k - 1].end == tok.start
            and re.fullmatch(r"\d{3}(\.\d+)?", s)
            and re.fullmatch(r"[1-9]\d{0,2}(\d{3})*", out[-2])
            and out[-3:-2] != [","]
            and (not brackets or brackets[-1])
        ):
            out[-2:] = [out[-2] + s]
            continue
        if s in ("(", "["):
            brackets.append(s == "(" and not (out and _is_name(out[-1])))
        elif s in (")", "]") and brackets:
            brackets.pop()
        out.append(s)
    return out


def _operand_start(out: list[str]) -> int:
    """Where the operand of a postfix `!` begins in `out`."""
    if out and out[-1] == ")":
        depth = 0
        for k in range(len(out) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(out[k], 0)
            if depth == 0:
                return k - 1 if k > 0 and _is_name(out[k - 1]) else k
    if out and (_is_number(out[-1]) or _is_name(out[-1])):
        return len(out) - 1
    raise ToolError("syntax error: '!' must follow a number, a name or a closing parenthesis")


# ---------------------------------------------------------------------------------------------
# The allow-list: every node kind, name and function the walk accepts. Built lazily in the
# worker, so that importing this module (in the agent) does not import sympy.

_CONSTANTS: dict[str, Any] = {}
FUNCTIONS: dict[str, Callable[..., Any]] = {}
_REFUSED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Slice: "slice",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.JoinedStr: "f-string",
    ast.Dict: "dict literal",
    ast.Set: "set literal",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment",
    ast.Starred: "starred argument",
    ast.BoolOp: "and/or",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_STATEMENTS = {
    ast.Import: "import",
    ast.ImportFrom: "import",
    ast.Assign: "assignment",
    ast.AugAssign: "assignment",
    ast.AnnAssign: "assignment",
    ast.FunctionDef: "function definition",
    ast.ClassDef: "class definition",
    ast.For: "loop",
    ast.While: "loop",
    ast.With: "with statement",
    ast.Delete: "del statement",
    ast.Global: "global statement",
    ast.Raise: "raise statement",
    ast.Try: "try statement",
    ast.Assert: "assert statement",
    ast.If: "if statement",
    ast.Return: "return statement",
}


class _Solutions(list):  # type: ignore[type-arg]
    """sympy's `solve(..., dict=True)` answer: a list of {symbol: value}, printed as sets."""


def _setup() -> None:
    """Fill the constant and function tables (imports sympy; runs once, in the worker)."""
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
                shown = "^".join(_brief(x) if x.is_Atom else f"({_brief(x)})" for x in (base, exponent))
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
            raise ToolError(f"too large: {_brief(n)}! has more than {MAX_BITS:,} bits")
        return sp.factorial(n)

    def binomial(n: Any, k: Any) -> Any:
        if n.is_Integer and k.is_Integer and min(k, n - k) * n.p.bit_length() > MAX_BITS:
            raise ToolError(f"too large: binomial({_brief(n)}, {_brief(k)}) has more than {MAX_BITS:,} bits")
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
        return _Solutions(sp.solve(equations, unknowns, dict=True))

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

    _CONSTANTS.update(
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
    _OPERATORS.update(
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
    _RELATIONS.update({ast.Eq: sp.Eq, ast.NotEq: sp.Ne, ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge})


_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {}
_RELATIONS: dict[type, Callable[[Any, Any], Any]] = {}
_OPERATOR_SIGNS = {
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


def _parse(text: str) -> Any:
    """Normalise, parse and build: model text -> sympy object, through the allow-list only."""
    source = _retokenize(_normalize(text))
    if not source:
        raise ToolError("empty expression")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        _refuse_statement(source)
        at = exc.offset or 0
        where = f"near {source[max(0, at - 11) : at + 10]!r}" if 0 < at <= len(source) else "at the end"
        raise ToolError(f"syntax error {where}: {exc.msg} (read as {source!r})") from None
    except ValueError as exc:
        raise ToolError(f"syntax error: {exc}") from None
    return _build(tree.body, source, _bound_names(tree))


_BINDERS = {
    "diff",
    "differentiate",
    "derivative",
    "integrate",
    "integral",
    "limit",
    "lim",
    "sum",
    "summation",
    "product",
    "solve",
}


def _bound_names(tree: ast.AST) -> frozenset[str]:
    """`i` or `e` named as the variable of a sum, integral, limit, ...: there they are not constants."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BINDERS:
            for arg in node.args[1:]:
                first = arg.elts[0] if isinstance(arg, ast.Tuple) and arg.elts else arg
                if isinstance(first, ast.Name):
                    names.add(first.id)
    return frozenset(names & {"i", "e"})


def _refuse_statement(source: str) -> None:
    """Name the statement (import, assignment, ...) a text is, if it is one."""
    try:
        statements = ast.parse(source, mode="exec").body
    except (SyntaxError, ValueError):
        return
    for statement in statements:
        for kind, what in _STATEMENTS.items():
            if isinstance(statement, kind):
                raise ToolError(f"disallowed syntax: {what} in {_excerpt(source, statement)!r}")


def _excerpt(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node) or ""
    return text if len(text) <= 40 else text[:37] + "..."


def _build(node: ast.AST, source: str, bound: frozenset[str]) -> Any:
    import sympy as sp

    if isinstance(node, ast.Constant):
        value, text = node.value, (ast.get_source_segment(source, node) or "").replace("_", "")
        if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
            raise ToolError(f"disallowed syntax: {type(value).__name__} literal {_excerpt(source, node)!r}")
        if isinstance(value, int):
            return sp.Integer(value)
        if isinstance(value, complex):  # `3j`: an imaginary literal, exact like any decimal
            return sp.Rational(text[:-1]) * sp.I
        return sp.Rational(text)  # from the digits written, so 0.1 is exactly 1/10
    if isinstance(node, ast.Name):
        name = node.id
        if name.startswith("_"):
            raise ToolError(f"disallowed syntax: name {name!r}")
        if name in _CONSTANTS and name not in bound:
            return _CONSTANTS[name]
        if name in FUNCTIONS:
            raise ToolError(f"{name!r} is a function: write {name}(...)")
        return sp.Symbol(name)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _build(node.left, source, bound), _build(node.right, source, bound)
        if isinstance(left, (list, tuple)) or isinstance(right, (list, tuple)):
            raise ToolError(
                f"no arithmetic on lists or tuples in {_excerpt(source, node)!r}; write Matrix([[...]]) for a matrix"
            )
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _build(node.operand, source, bound)
        if isinstance(operand, (list, tuple)):
            raise ToolError(f"no arithmetic on lists or tuples in {_excerpt(source, node)!r}")
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        sign = _OPERATOR_SIGNS.get(type(node.op), type(node.op).__name__)
        raise ToolError(f"disallowed syntax: operator {sign!r} in {_excerpt(source, node)!r}")
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _RELATIONS:
            raise ToolError(
                f"disallowed syntax: comparison {_excerpt(source, node)!r} (use one of = == != < <= > >=, unchained)"
            )
        left, right = _build(node.left, source, bound), _build(node.comparators[0], source, bound)
        return _RELATIONS[type(node.ops[0])](left, right)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _build(node.func, source, bound)  # names the refused part: attribute, lambda, subscript, ...
            raise ToolError(f"disallowed syntax: call of {_excerpt(source, node.func)!r}")
        name = node.func.id
        if name not in FUNCTIONS:
            known = ", ".join(sorted(set(FUNCTIONS) - {"Abs", "Matrix"}, key=str.lower))
            raise ToolError(f"disallowed syntax: call of unknown function {name!r} (known: {known})")
        if node.keywords:
            raise ToolError(f"disallowed syntax: keyword argument in {_excerpt(source, node)!r}")
        args = [_build(a, source, bound) for a in node.args]
        try:
            return FUNCTIONS[name](*args)
        except TypeError as exc:
            raise ToolError(f"{name}({', '.join(map(_brief, args))}) could not be evaluated: {exc}") from None
    if isinstance(node, ast.Tuple):
        return tuple(_build(e, source, bound) for e in node.elts)
    if isinstance(node, ast.List):
        return [_build(e, source, bound) for e in node.elts]
    what = _REFUSED.get(type(node), type(node).__name__)
    raise ToolError(f"disallowed syntax: {what} in {_excerpt(source, node)!r}")


# ---------------------------------------------------------------------------------------------
# Output: exact form first, then ` ≈ ` and a decimal when that adds information


def _format(value: Any) -> str:
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

    if isinstance(value, _Solutions):
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


def _brief(x: Any) -> str:
    """`x` for an error message: numbers too long to read become their size."""
    if getattr(x, "is_Integer", False) and abs(x.p).bit_length() > 200:
        return f"a {int(abs(x.p).bit_length() * 0.30103) + 1:,}-digit integer"
    text = str(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _evaluate(expression: str) -> str:
    if not FUNCTIONS:
        _setup()
    return _format(_parse(expression))


# ---------------------------------------------------------------------------------------------
# The worker: a child process that evaluates one JSON request per line


def _serve() -> None:
    """Worker main loop: JSON line in, JSON line out; exits at end of input or after a memory fault."""
    import resource

    _setup()
    for warm_up in ("sqrt(8)/3 + 1/7", "solve x^2 - 2 = 0"):  # sympy's lazy imports, before real calls
        _evaluate(warm_up)
    sys.setrecursionlimit(10_000)  # long sums nest deeply; MAX_INPUT_CHARS bounds the depth
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    channel, sys.stdout = sys.stdout, sys.stderr  # a stray print must not corrupt the protocol

    def reply(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    reply({"ready": True})
    for line in sys.stdin:
        try:
            reply({"result": _evaluate(json.loads(line)["expression"])})
        except ToolError as exc:
            reply({"error": str(exc)})
        except MemoryError:
            # sympy's caches may hold the debris: say so, and let the parent start a fresh worker
            reply(
                {"error": f"out of memory: the calculation needs more than {MEMORY_BYTES >> 20} MiB", "exiting": True}
            )
            return
        except RecursionError:
            reply({"error": "too deeply nested to evaluate"})
        except Exception as exc:  # sympy's verdict on input it cannot handle; the model should hear it
            reply({"error": f"could not evaluate: {type(exc).__name__}: {exc}"})


class _Worker:
    """The parent's handle on the worker process: started lazily, replaced after a failure."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    def ask(self, expression: str) -> dict[str, Any]:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            assert self._process is not None and self._process.stdin is not None
            try:
                self._process.stdin.write(json.dumps({"expression": expression}).encode() + b"\n")
                self._process.stdin.flush()
                answer = self._read(TIMEOUT_SECONDS)
            except BrokenPipeError:
                self.stop()
                raise ToolError("the calculator process died; it will restart on the next call") from None
            except BaseException:  # Ctrl-C mid-call: a late answer must not be read as the next one's
                self.stop()
                raise
            if answer is None:
                self.stop()
                raise ToolError(
                    f"timed out after {TIMEOUT_SECONDS:g} s: too expensive to compute exactly; "
                    "simplify the expression or ask for less"
                )
            if answer.get("exiting"):
                self.stop()
            return answer

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[1])
        boot = f"import sys; sys.path.insert(0, {root!r}); from tools.calculator import _serve; _serve()"
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-c", boot],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
            )
        except OSError as exc:
            raise ToolError(f"the calculator process could not start: {exc}") from None
        self._buffer = b""
        if self._read(STARTUP_SECONDS) != {"ready": True}:
            self.stop()
            raise ToolError("the calculator process failed to start")

    def _read(self, timeout: float) -> dict[str, Any] | None:
        """One JSON line from the worker, or None at the deadline; a dead worker raises ToolError."""
        assert self._process is not None and self._process.stdout is not None
        fd, deadline = self._process.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.stop()
                raise ToolError(
                    f"the calculator process crashed (memory cap {MEMORY_BYTES >> 20} MiB?); "
                    "it will restart on the next call"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None


_worker = _Worker()
atexit.register(_worker.stop)


def calculate(expression: str) -> str:
    """Evaluate math exactly with sympy: arithmetic, algebra, calculus, equations.

    Write it as you would on paper: `2^10`, `3(4+5)`, `2x`, `15% of 80`, `1,000 * 3`, `5!`,
    `sqrt(2)/2`, `log(8, 2)`, `\\frac{1}{2} + \\sqrt[3]{27}`, `binomial(10, 3)`, `gcd(12, 18)`,
    `solve x^2 - 5x + 6 = 0`, `solve x + y = 3, x - y = 1`, `simplify ...`, `expand ...`,
    `factor ...`, `diff(x^3, x)`, `integrate(x^2, (x, 0, 1))`, `limit(sin(x)/x, x, 0)`,
    `sum(k^2, (k, 1, n))`, `det([[1, 2], [3, 4]])`. Constants: pi, e, i, oo.
    The answer is exact, then ≈ a decimal: `1/3 ≈ 0.333333333333333`.

    Args:
        expression: The math to evaluate, as text.
    """
    if len(expression) > MAX_INPUT_CHARS:
        raise ToolError(f"expression too long: {len(expression):,} characters (limit {MAX_INPUT_CHARS:,})")
    answer = _worker.ask(expression)
    if "error" in answer:
        raise ToolError(str(answer["error"]))
    return str(answer["result"])


calculator = tool(name="calculator")(calculate)
