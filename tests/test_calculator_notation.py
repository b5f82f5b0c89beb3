"""Tests of notation the calculator could misread: each is read one documented way or refused.

Every case here once had a confident wrong answer (or none): `10²³` was 10^8, `5!!` was (5!)!,
`ln e^2` was 1, `sin pi/2` was 0, `Ⅰ` was the imaginary unit.
"""

from __future__ import annotations

import re

import pytest

from tools.calculator import ToolError, calculate, calculator

READ = [
    # superscripts: one exponent per run, signs included
    ("10²³", "1" + "0" * 23),
    ("2³²", "4294967296"),
    ("x²³", "x**23"),
    ("10⁻³", "1/1000 ≈ 0.001"),
    ("2⁻¹", "1/2 ≈ 0.5"),
    ("xⁿ", "x**n"),
    ("x²y", "x**2*y"),
    ("2⁽¹⁺²⁾", "8"),
    ("3²", "9"),
    # the double factorial, and factorials inside function arguments
    ("5!!", "15"),
    ("6!!", "48"),
    ("factorial2(7)", "105"),
    ("3!", "6"),
    ("(3!)!", "720"),
    ("ln 5!", "log(120) ≈ 4.78749174278205"),
    # a function without parentheses takes the next atom with its power
    ("ln e^2", "2"),
    ("ln e²", "2"),
    ("sin x^2", "sin(x**2)"),
    ("sqrt 16", "4"),
    ("√16 + 9", "13"),
    ("√2/2", "sqrt(2)/2 ≈ 0.707106781186548"),
    ("sqrt 2^2", "2"),
    ("cos pi + 1", "0"),
    ("2 sin x cos x", "2*sin(x)*cos(x)"),
    ("ln ln e", "0"),
    ("sin(pi)/2", "0"),
    ("sin(pi/2)", "1"),
    # characters with one meaning
    ("½", "1/2 ≈ 0.5"),
    ("3½", "7/2 ≈ 3.5"),
    ("-2¾", "-11/4 ≈ -2.75"),
    ("⅓ + 1", "4/3 ≈ 1.33333333333333"),
    ("１２３＋１", "124"),
    ("𝟐 + 𝟑", "5"),
    ("𝑥 + 𝑥", "2*x"),
    ("6 ÷ 4", "3/2 ≈ 1.5"),
    ("3 − 1", "2"),
    ("2 ⋅ 3 ∙ 4", "24"),
    ("7 ⁄ 2", "7/2 ≈ 3.5"),
    ("x₁ + x₁", "2*x_1"),
    ("log₂ 8", "3"),
    ("log₁₀(1000)", "3"),
    ("∛27", "3"),
    ("2\u00a0+\u20093", "5"),
]


@pytest.mark.parametrize(("expression", "expected"), READ)
def test_notation_is_read_the_documented_way(expression: str, expected: str) -> None:
    assert calculate(expression) == expected


REFUSED = [
    # a function's reach is ambiguous
    ("sin pi/2", "ambiguous: is sin pi / 2 sin(pi / 2) or sin(pi) / 2?"),
    ("cos pi * 2", "ambiguous"),
    ("sin 2x", "ambiguous"),
    ("ln 2 x", "ambiguous"),
    ("√2x", "ambiguous"),
    ("5!!!", "ambiguous: '!!!'"),
    ("²√8", "ambiguous: '²√'"),
    ("3³√8", "ambiguous"),
    # characters NFKC would fold into a different meaning
    ("Ⅰ", "ROMAN NUMERAL ONE"),
    ("Ⅰ + 1", "ROMAN NUMERAL ONE"),
    ("ⅰ^2", "SMALL ROMAN NUMERAL ONE"),
    ("Ⅻ", "ROMAN NUMERAL TWELVE"),
    ("ℯ", "SCRIPT SMALL E"),
    ("ⅈ^2", "DOUBLE-STRUCK ITALIC SMALL I"),
    ("ℂ", "DOUBLE-STRUCK CAPITAL C"),
    ("5µ", "MICRO SIGN"),
    ("2ª", "FEMININE ORDINAL INDICATOR"),
    ("5™", "TRADE MARK SIGN"),
    ("①+1", "CIRCLED DIGIT ONE"),
    ("⅟3", "FRACTION NUMERATOR ONE"),
    ("e\u0301 + 1", "combining marks"),
    ("101₂", "disallowed subscript"),
    ("log₃ 9", "log(x, 3)"),
]


@pytest.mark.parametrize(("expression", "message"), REFUSED)
def test_ambiguous_or_folding_notation_is_refused(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=re.escape(message)):
        calculate(expression)


def test_thousands_with_spaces_are_not_one_number() -> None:
    for spaced in ("1 000", "1\u00a0000", "1\u202f000"):
        with pytest.raises(ToolError, match="syntax error"):
            calculate(spaced)


def test_the_conventions_are_in_the_tool_description() -> None:
    for convention in ("ln e^2", "sin pi/2", "5!!", "10²³"):
        assert convention in calculator.description
