"""The calculator's notation: what a model writes -> Python expression source (parsed, never run).

`to_source` turns `solve x^2 - 5x + 6 = 0`, `15% of 80`, `\\frac{1}{2}`, `1,000,000`, `3(4+5)`,
`5!` and `sqrt 2` into Python expression syntax for `calc_parse` to walk: characters first
(`calc_unicode.fold`), then LaTeX, commands, percentages and `=`, then tokens (thousands
separators, factorials, functions written without parentheses, implicit multiplication).

Conventions where people read notation two ways (the tool's description states them):
- a power binds before a function written without parentheses: `ln e^2` is ln(e^2) = 2,
  `sin x^2` is sin(x^2); what such a function takes is one atom with its power and `!`;
- after that argument, `*` or `/` is ambiguous (`sin pi/2`: sin(pi/2) or sin(pi)/2?) and refused,
  except after the radicals sqrt and cbrt (`√2/2` is sqrt(2)/2, as everyone writes it);
  juxtaposition after it (`sin 2x`, `√2x`) is refused too; another function is a product
  (`2 sin x cos x`);
- `n!!` is the double factorial (`5!!` = 15); `n!!!` is refused (write parentheses).

It does not: build sympy objects (`calc_parse` does), know what the functions compute, or
accept LaTeX beyond arithmetic.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize

from tools.calc_functions import CONSTANTS, FUNCTIONS
from tools.calc_unicode import fold
from tools.registry import ToolError

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


def normalize(text: str) -> str:
    """Rewrite model notation as Python expression syntax; the result is only ever parsed."""
    text = _expand_latex(fold(text))
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


def to_source(text: str) -> str:
    """Model text as Python expression source, or ToolError for what cannot be read one way."""
    return retokenize(normalize(text))


def retokenize(text: str) -> str:
    """Token-level rewrites: thousands separators, `!` and `!!`, `sqrt 2`, implicit multiplication."""
    out: list[str] = []
    for s in _bare_calls(_join_thousands(text)):
        prev = out[-1] if out else ""
        if s in _FACTORIALS:
            start = _operand_start(out)
            out[start:] = [_FACTORIALS[s], "(", *out[start:], ")"]
            continue
        # `x(x+1)` with a one-letter name is a product; a longer unknown name is an unknown function.
        unknown_call = _is_name(prev) and prev not in CONSTANTS and len(prev) > 1
        call = s == "(" and (prev in FUNCTIONS or unknown_call)
        prev_operand = _is_number(prev) or prev == ")" or (_is_name(prev) and prev not in FUNCTIONS)
        if prev_operand and _is_operand(s) and not call and not (_is_number(prev) and _is_number(s)):
            out.append("*")
        out.append(s)
    return " ".join(out)


_FACTORIALS = {"!": "factorial", "!!": "factorial2"}
_RADICALS = frozenset({"sqrt", "cbrt"})
_PRODUCTS = frozenset({"*", "/", "//", "%"})


def _is_operand(token: str) -> bool:
    return _is_number(token) or _is_name(token) or token == "("


def _bare_calls(tokens: list[str]) -> list[str]:
    """`sqrt 2` -> `sqrt ( 2 )`, `ln e ** 2` -> `ln ( e ** 2 )`; `sin pi / 2`, `sin 2 x` are refused."""
    out: list[str] = []
    k = 0
    while k < len(tokens):
        name = tokens[k]
        bare = name in FUNCTIONS and tokens[k + 1 : k + 2] not in ([], ["("])
        end = _argument_end(tokens, k + 1) if bare else None
        if end is None:
            out.append(name)
            k += 1
            continue
        follower = tokens[end] if end < len(tokens) else ""
        if (follower in _PRODUCTS and name not in _RADICALS) or (_is_operand(follower) and follower not in FUNCTIONS):
            argument, rest = (" ".join(part).replace(" ** ", "^") for part in (tokens[k + 1 : end], tokens[end:]))
            rest = rest if len(rest) <= 30 else rest[:27] + "..."
            raise ToolError(
                f"ambiguous: is {name} {argument} {rest} {name}({argument} {rest}) or {name}({argument}) {rest}? "
                "Write the parentheses"
            )
        out += [name, "(", *_bare_calls(tokens[k + 1 : end]), ")"]
        k = end
    return out


def _argument_end(tokens: list[str], j: int) -> int | None:
    """Where the argument of a function written without parentheses ends: an atom, its `!` and
    its power (`ln e^2` is ln(e^2)); None when no atom starts at `j` (`sum - 5` is no call)."""
    end = _atom_end(tokens, j)
    while end is not None and tokens[end : end + 1] == ["**"]:
        j = end + 1
        while tokens[j : j + 1] in (["+"], ["-"]):
            j += 1
        end = _atom_end(tokens, j)
    return end


def _atom_end(tokens: list[str], j: int) -> int | None:
    if j >= len(tokens):
        return None
    s = tokens[j]
    if s in FUNCTIONS and tokens[j + 1 : j + 2] != ["("]:
        return _argument_end(tokens, j + 1)  # `ln ln x`, `sqrt sqrt 16`
    if s == "(" or (s in FUNCTIONS and tokens[j + 1 : j + 2] == ["("]):
        j += s != "("
        depth = 0
        for k in range(j, len(tokens)):
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(tokens[k], 0)
            if depth == 0:
                j = k + 1
                break
        else:
            return None
    elif _is_number(s) or _is_name(s):
        j += 1
    else:
        return None
    while tokens[j : j + 1] in (["!"], ["!!"]):
        j += 1
    return j


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
        if s == "!" and out and out[-1] in _FACTORIALS and raw[k - 1].end == tok.start:
            if out[-1] == "!!":
                raise ToolError("ambiguous: '!!!' (a triple factorial, or factorials of factorials?): use parentheses")
            out[-1] = "!!"  # `5!!` is the double factorial, 5*3*1
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
