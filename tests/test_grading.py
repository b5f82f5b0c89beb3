r"""Tests of answer grading: a table of equivalent and different pairs, extraction, normalization.

The symbolic cases go through the calculator's worker process (started once, about 0.4 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.core.grading import extract_answer, is_equivalent, normalize

EQUIVALENT = [
    # numbers as GSM8K references and models write them
    ("18", "18"),
    ("$18", "18"),
    ("\\$18.00", "18"),
    ("18 dollars", "18"),
    ("1,000", "1000"),
    ("$1,200.50", "1200.5"),
    ("70,000", "70000"),
    ("-3", "-3.0"),
    ("1e3", "1000"),
    ("5 cm", "5"),
    ("90^\\circ", "90"),
    ("90°", "90"),
    ("12 apples", "12"),
    # percent
    ("50%", "50"),
    ("50\\%", "0.5"),
    ("12.5 percent", "12.5"),
    # fractions and decimals
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac{3}{4}", "0.75"),
    ("\\frac34", "3/4"),
    ("-\\frac{1}{2}", "-0.5"),
    ("0.33333", "1/3"),  # within the relative tolerance 1e-4
    ("2/4", "1/2"),
    # boxed, text, variables
    ("\\boxed{42}", "42"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
    ("x = 5", "5"),
    ("x=5", "\\boxed{5}"),
    ("\\text{Yes}", "yes"),
    ("(B)", "B"),
    ("\\textbf{(C)}", "C"),
    # tuples, intervals, sets
    ("(1, 2)", "(1,2)"),
    ("(1,\\frac{1}{2})", "(1, 0.5)"),
    ("[0, 1)", "[0,1)"),
    ("\\{2, 3\\}", "\\{3, 2\\}"),
    ("2, 3", "3, 2"),
    ("x = 2, x = 3", "3, 2"),
    # symbolic, through the calculator
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
    ("(x+1)^2", "x^2 + 2x + 1"),
    ("3\\sqrt{2}", "\\sqrt{18}"),
    ("10^{3}", "1000"),
    ("2^{10}", "1024"),
    ("\\pi/2", "1.5708"),
    ("0.7071", "\\frac{\\sqrt{2}}{2}"),
    ("y = 2x + 1", "y = 1 + 2x"),
    ("\\sqrt{8}", "2\\sqrt{2}"),
    ("e^{i\\pi}", "-1"),
]

DIFFERENT = [
    ("17", "18"),
    ("18.5", "18"),
    ("0.3", "1/3"),
    ("0.33", "1/3"),  # a rounding is not the number (Qwen2.5-Math's grader agrees)
    ("0.333", "\\frac{1}{3}"),
    ("3.14", "\\pi"),
    ("0.34", "1/3"),
    ("-5", "5"),
    ("50", "5"),
    ("1000", "100"),
    ("(2, 1)", "(1, 2)"),  # order matters in a tuple
    ("[1, 2]", "(1, 2)"),  # closed vs open interval
    ("[0, 1)", "[0, 1]"),
    ("\\{1, 2\\}", "\\{1, 2, 3\\}"),
    ("2, 3", "2, 4"),
    ("2x + 1", "2x + 2"),
    ("(x+1)^2", "x^2 + 1"),
    ("\\frac{1}{2}", "\\frac{1}{3}"),
    ("\\sqrt{2}", "1.5"),
    ("\\pi", "3"),
    ("x = 4", "5"),
    ("yes", "no"),
    ("(A)", "B"),
    ("", "5"),
    ("5", ""),
    ("1,000", "1"),
    ("12%", "0.2"),
    ("os.system('ls')", "0"),  # refused by the calculator's allow-list: simply not equal
    ("__import__('os')", "1"),
]


@pytest.mark.parametrize(("pred", "ref"), EQUIVALENT)
def test_equivalent_pairs(pred: str, ref: str) -> None:
    assert is_equivalent(pred, ref)
    assert is_equivalent(ref, pred)  # the relation is symmetric


@pytest.mark.parametrize(("pred", "ref"), DIFFERENT)
def test_different_pairs(pred: str, ref: str) -> None:
    assert not is_equivalent(pred, ref)


def test_table_is_large_enough() -> None:
    assert len(EQUIVALENT) >= 40 and len(DIFFERENT) >= 20


def test_none_is_never_equivalent() -> None:
    assert not is_equivalent(None, "1")
    assert not is_equivalent("1", None)


def test_huge_or_hostile_answers_end_quickly() -> None:
    assert not is_equivalent("9^9^9^9", "1")  # refused by the calculator's bomb guard
    assert not is_equivalent("1" * 500 + "x", "x")  # past MAX_SYMBOLIC_CHARS: text only
    assert not is_equivalent("(" * 50, ")" * 50)


EXTRACTION = [
    ("The answer is 42.", "42"),
    ("So the result is \\boxed{\\frac{1}{\\sqrt{2}}}.", "\\frac{1}{\\sqrt{2}}"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("nested \\boxed{\\frac{a^{2}}{b_{1}}} here", "\\frac{a^{2}}{b_{1}}"),
    ("**Final Answer:** $\\frac{1}{2}$", "\\frac{1}{2}"),
    ("Final Answer: The final answer is 7. I hope it is correct.", "7"),
    ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
    ("So she pays $1,200 in total.", "$1,200"),
    ("x = 5", "x = 5"),
    ("<think>it could be 7</think>\n\nThe total is 12 apples.", "12"),
    ("Let me compute.\n3 + 4 = 7\n7", "7"),
    ("(1, 2)", "(1, 2)"),
    ("", ""),
    ("   \n ", ""),
    ("No numbers here at all.", "No numbers here at all"),
    ("The answer: 3/4", "3/4"),
    ("\\boxed 5", "5"),
    ("<tool_response>\n5023/5 ≈ 1004.6\n</tool_response>", ""),
    ("<tool_call>\n{}\n</tool_call>\n29/2 ≈ 14.5", "29/2"),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACTION)
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


def test_extract_then_grade_a_gsm8k_solution() -> None:
    solution = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18"
    assert is_equivalent(extract_answer("She makes $18.00 a day, so the answer is $18."), extract_answer(solution))


NORMALIZED = [
    ("\\boxed{\\dfrac{1}{2}}", "1/2"),
    ("$1,234", "1234"),
    ("x = 3", "3"),
    ("\\left( 1, 2 \\right)", "(1,2)"),
    ("18 dollars.", "18"),
    ("\\text{(B)}", "B"),
    ("5\\%", "5%"),
    ("−7", "-7"),
]


@pytest.mark.parametrize(("answer", "expected"), NORMALIZED)
def test_normalize(answer: str, expected: str) -> None:
    assert normalize(answer) == expected


HELD_OUT = [json.loads(line) for line in (Path(__file__).parent / "fixtures" / "grading_heldout.jsonl").open()]


@pytest.mark.parametrize("pair", HELD_OUT, ids=lambda p: f"{p['pred']} vs {p['ref']}")
def test_held_out_pairs_grade_as_qwen_math_does(pair: dict[str, Any]) -> None:
    """Relative tolerance 1e-4, percent forms, units dropped; a rounding is not the number."""
    assert is_equivalent(pair["pred"], pair["ref"]) is pair["same"], pair["why"]
    assert is_equivalent(pair["ref"], pair["pred"]) is pair["same"], pair["why"]  # symmetric
