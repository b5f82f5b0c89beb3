"""The calculator's characters: Unicode math notation -> ASCII, or a refusal; never a silent fold.

Python folds identifiers with NFKC, so left alone `Ⅰ` (Roman numeral one) would be read as `I`,
the imaginary unit, and `ℯ`, `ℂ`, `µ`, `ª` as other letters. `fold` rewrites what has one
meaning and refuses the rest, so that the text it returns is NFKC-stable and nothing is folded
later:

- superscripts are one exponent per run: `10²³` is `10^(23)`, `2⁻¹` is `2^(-1)`, `xⁿ` is `x^(n)`;
  a superscript just before `√` (a root index, or a power times a root?) is refused;
- subscripts after a name are part of it (`x₁` is the symbol `x_1`), `log₂`/`log₁₀` are log2 and
  log10; other subscripts (`101₂`, `log₃`) are refused;
- vulgar fractions are exact: `½` is `(1/2)`, and after a number they are a mixed number:
  `3½` is `(3+1/2)`, not 3 times 1/2;
- full-width forms (`１２３`, `＋`) and mathematical alphanumerics (`𝑥`, `𝟐`) are their plain
  letters and digits, and any Unicode space is a space;
- operator signs become Python's: `×` `·` `⋅` `∙` `∗` are `*`, `÷` `⁄` `∕` are `/`, `−` `–` are `-`,
  `√` is sqrt, `∛` is cbrt, `π` is pi, `∞` is oo, `≤ ≥ ≠` are `<= >= !=`;
- any other character that NFKC would change (Roman numerals, letterlike symbols, ligatures,
  circled digits, combining marks) is refused with its name.

It does not: read LaTeX (`calc_text` does), or judge characters NFKC leaves alone (Greek letters
are plain symbol names; stray symbols are syntax errors later).
"""

from __future__ import annotations

import re
import unicodedata

from tools.registry import ToolError

SIGNS = {
    "×": "*",
    "·": "*",
    "⋅": "*",
    "∙": "*",
    "∗": "*",
    "÷": "/",
    "⁄": "/",
    "∕": "/",
    "−": "-",
    "–": "-",
    "π": " pi ",
    "√": " sqrt ",
    "∛": " cbrt ",
    "∞": " oo ",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
    "\n": " ",
}


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _kind(char: str) -> str:
    """`<super>`, `<sub>`, `<fraction>`, ... : how Unicode says the character decomposes."""
    decomposition = unicodedata.decomposition(char)
    return decomposition.split(" ", 1)[0] if decomposition.startswith("<") else ""


def _class(kind: str, one: str = r".+", exclude: str = "") -> str:
    """The characters of one decomposition kind whose NFKC form matches `one`."""
    chars = (chr(c) for c in range(0xA0, 0x3000))
    return "".join(c for c in chars if _kind(c) == kind and c not in exclude and re.fullmatch(one, _nfkc(c)))


_ONE = r"[A-Za-z0-9+\-−=()]"  # a superscript or subscript that stands for one letter, digit or sign


_SUPERSCRIPT = re.compile(f"[{re.escape(_class('<super>', _ONE, exclude='ªº'))}]+")  # ordinals are not powers
_SUBSCRIPT = re.compile(f"[{re.escape(_class('<sub>', _ONE))}]+")
_FRACTIONS = _class("<fraction>", r"\d+⁄\d+")
_MIXED = re.compile(rf"(\d+(?:\.\d+)?)\s?([{_FRACTIONS}])")
_NAME_BEFORE = re.compile(r"(?<![\w.])([A-Za-z]\w*)$")


def _styled(char: str) -> bool:
    """A full-width form or a mathematical letter or digit: the same letter or digit, styled."""
    return 0xFF01 <= ord(char) <= 0xFF5E or 0x1D400 <= ord(char) <= 0x1D7FF


def fold(text: str) -> str:
    """Model text with its Unicode math notation in ASCII; ToolError for what could be misread."""
    if text.isascii():
        return text
    text = "".join(_nfkc(c) if _styled(c) else " " if unicodedata.category(c) == "Zs" else c for c in text)
    text = _superscripts(text)
    text = _subscripts(text)
    text = _MIXED.sub(lambda m: f"({m.group(1)}+{_fraction(m.group(2))})", text)
    for char in set(text) & set(_FRACTIONS):
        text = text.replace(char, _fraction(char))
    for old, new in SIGNS.items():
        text = text.replace(old, new)
    for char in text:
        if not char.isascii() and _nfkc(char) != char:
            raise ToolError(
                f"disallowed character {char!r} ({unicodedata.name(char, f'U+{ord(char):04X}')}): "
                f"it could be misread as {_nfkc(char)!r}; write what you mean in plain ASCII"
            )
    if _nfkc(text) != text:
        raise ToolError("disallowed characters: combining marks; write the expression in plain ASCII")
    return text


def _superscripts(text: str) -> str:
    def power(match: re.Match[str]) -> str:
        if text[match.end() : match.end() + 1] in ("√", "∛"):
            raise ToolError(
                f"ambiguous: {match.group() + text[match.end()]!r} could be a root index or a power; "
                "write root(x, n) for an n-th root, or put * before the root"
            )
        return f"^({_nfkc(match.group()).replace('−', '-')})"

    return _SUPERSCRIPT.sub(power, text)


def _subscripts(text: str) -> str:
    def subscript(match: re.Match[str]) -> str:
        digits, before = _nfkc(match.group()).replace("−", "-"), text[: match.start()]
        name = _NAME_BEFORE.search(before)
        if name and name.group(1) == "log":
            if digits in ("2", "10"):
                return digits
            raise ToolError(f"write log(x, {digits}) for a logarithm to base {digits}")
        if name and re.fullmatch(r"\w+", digits):
            return "_" + digits
        raise ToolError(f"disallowed subscript {match.group()!r}: write bases and indices in plain ASCII, e.g. x_1")

    return _SUBSCRIPT.sub(subscript, text)


def _fraction(char: str) -> str:
    return "({}/{})".format(*_nfkc(char).split("⁄"))
