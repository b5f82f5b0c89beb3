"""Countdown, TinyZero's verifiable arithmetic task: solvable instances, and the rule that grades an answer.

An instance is a few numbers and a target; an answer is one arithmetic expression that uses each
given number at most once and equals the target. `generate` draws instances from a seed, with
the difficulty knobs (how many numbers, their range, the targets' range): each is built from one
of its own solutions, so every instance is solvable, and that solution comes with it. The same
seed gives the same instances, and the first k of n are the instances of n = k.

`check` grades an expression. It is read as the calculator reads notation (`tools.calc_text`:
`×`, `÷`, `\\times`, `3(4+5)`, a trailing `= 24`), parsed with `ast`, and walked through an
allow-list narrower than the calculator's: whole numbers, `+ - * /`, unary minus, parentheses.
Values are exact fractions; nothing is evaluated by Python (`eval`, `sympify`). The numbers used
are checked against those given before the value is compared with the target.

The rule, where Countdown's variants differ: each number at most once (the classic game's rule;
TinyZero's reward asks for each number exactly once); intermediate results may be fractions or
negative (the classic game wants positive whole numbers; the generated solutions keep to that).

It does not run an agent (`agent.workloads.evaluation` grades episodes with `grade`).
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MAX_CHARS = 500
"""Longest answer expression read: Countdown's have a few numbers, never pages."""
MAX_NUMBERS = 8
"""Most numbers an instance may have; more makes no sense to search by hand or by tool."""
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Instance:
    """One Countdown problem."""

    numbers: tuple[int, ...]
    """The numbers given; each may be used at most once (a number given twice, twice)."""
    target: int
    """The value the expression must have."""
    solution: str = ""
    """One expression that reaches the target ("" when not known, as for instances read from elsewhere)."""

    @property
    def id(self) -> str:
        """A stable name built from the content, such as `75 from 3 7 25 50`."""
        return f"{self.target} from {' '.join(map(str, self.numbers))}"


@dataclass(frozen=True)
class Verdict:
    """What the checker found in an answer."""

    correct: bool
    """The expression uses only given numbers, each at most once, and equals the target."""
    expression: str
    """The expression checked (as written, after taking it out of `\\boxed{}` or `<answer>`)."""
    value: str | None
    """Its exact value (`24`, `47/2`), or None when it could not be read."""
    reason: str
    """Why it is right or wrong, in a few words: `uses 8 twice (given once)`, `equals 23, not 24`."""


# ---------------------------------------------------------------------------------------------
# Instances


def generate(
    n: int,
    seed: int = 0,
    *,
    count: int = 4,
    low: int = 1,
    high: int = 99,
    targets: tuple[int, int] = (10, 100),
) -> list[Instance]:
    """`n` distinct solvable instances of `count` numbers drawn from `low..high`, targets in `targets`.

    Raises ValueError, saying which knob, when the knobs make no sense or leave no instance.
    """
    if n < 1:
        raise ValueError(f"the number of instances must be at least 1, not {n}")
    if not 2 <= count <= MAX_NUMBERS:
        raise ValueError(f"an instance needs 2 to {MAX_NUMBERS} numbers, not {count}")
    if not 1 <= low <= high:
        raise ValueError(f"the numbers' range must be 1 <= LOW <= HIGH, not {low}-{high}")
    if not 1 <= targets[0] <= targets[1]:
        raise ValueError(f"the targets' range must be 1 <= LOW <= HIGH, not {targets[0]}-{targets[1]}")
    instances: list[Instance] = []
    seen: set[str] = set()
    for index in range(n * 50):
        if len(instances) == n:
            break
        found = _instance(random.Random(f"countdown:{seed}:{index}"), count, low, high, targets)
        if found is not None and found.id not in seen:
            seen.add(found.id)
            instances.append(found)
    if len(instances) < n:
        raise ValueError(
            f"only {len(instances)} distinct solvable instances of {count} numbers in {low}-{high} with targets "
            f"{targets[0]}-{targets[1]}: widen a range"
        )
    return instances


def _instance(rng: random.Random, count: int, low: int, high: int, targets: tuple[int, int]) -> Instance | None:
    """Numbers, and a target reached by a random expression over some of them; None after many misses."""
    numbers = tuple(rng.randint(low, high) for _ in range(count))
    for _ in range(200):
        value, expression = _random_expression(rng, rng.sample(numbers, rng.randint(2, count)))
        if value is not None and targets[0] <= value <= targets[1] and value not in numbers:
            return Instance(numbers, value, expression)
    return None


# Operator precedence, for writing only the parentheses an expression needs.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "": 3}


def _random_expression(rng: random.Random, chosen: list[int]) -> tuple[int | None, str]:
    """Combine `chosen` pairwise with random operations, keeping every result a positive whole number."""
    terms: list[tuple[int, str, str]] = [(x, str(x), "") for x in chosen]  # value, text, its top operator
    while len(terms) > 1:
        a, b = terms.pop(rng.randrange(len(terms))), terms.pop(rng.randrange(len(terms)))
        if a[0] < b[0]:
            a, b = b, a
        options = [("+", a[0] + b[0]), ("*", a[0] * b[0])]
        if a[0] > b[0]:
            options.append(("-", a[0] - b[0]))
        if b[0] > 1 and a[0] % b[0] == 0:
            options.append(("/", a[0] // b[0]))
        op, value = rng.choice(options)
        terms.append((value, f"{_operand(a, op, False)} {op} {_operand(b, op, True)}", op))
    value, text, _ = terms[0]
    return value, text


def _operand(term: tuple[int, str, str], op: str, right: bool) -> str:
    _, text, inner = term
    tighter = _PRECEDENCE[inner] > _PRECEDENCE[op]
    same_and_safe = _PRECEDENCE[inner] == _PRECEDENCE[op] and not (right and op in "-/")
    return text if tighter or same_and_safe else f"({text})"


def question(numbers: Sequence[int], target: int) -> str:
    """The question an agent is asked (the prompt file `countdown.md`)."""
    from prompts import text

    return text("countdown.md", numbers=", ".join(map(str, numbers)), target=target)


def to_record(instance: Instance) -> dict[str, Any]:
    """One JSON line of a Countdown data file; `from_record` and `qwq-agent eval FILE` read it back."""
    return {
        "id": instance.id,
        "question": question(instance.numbers, instance.target),
        "numbers": list(instance.numbers),
        "target": instance.target,
        "solution": instance.solution,
    }


def from_record(record: dict[str, Any]) -> Instance | None:
    """The instance of a record with `numbers` (or TinyZero's `nums`) and `target`; None for other records."""
    numbers, target = record.get("numbers", record.get("nums")), record.get("target")
    if not isinstance(numbers, list) or not numbers or isinstance(target, bool) or not isinstance(target, int):
        return None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in numbers):
        return None
    return Instance(tuple(numbers), target, str(record.get("solution") or ""))


# ---------------------------------------------------------------------------------------------
# Checking


def grade(answer: str, numbers: Sequence[int], target: int) -> Verdict:
    """Check the expression in a model's final answer: the last `<answer>...</answer>` (TinyZero's
    format), else what `agent.core.grading.extract_answer` takes (the last `\\boxed{}`, ...)."""
    from agent.core.grading import extract_answer

    tagged = _ANSWER_TAG.findall(answer or "")
    expression = tagged[-1].strip() if tagged else extract_answer(answer or "")
    return check(expression, numbers, target)


def check(expression: str, numbers: Sequence[int], target: int) -> Verdict:
    """Whether `expression` uses only `numbers` (each at most once) and equals `target`."""
    expression = expression.strip().strip("$").strip().rstrip(".").strip()
    if not expression:
        return Verdict(False, "", None, "no expression")
    if len(expression) > MAX_CHARS:
        return Verdict(False, expression[:80] + "...", None, f"longer than {MAX_CHARS} characters")
    try:
        value, used = _read(expression, target)
    except _Refused as exc:
        return Verdict(False, expression, None, str(exc))
    problem = _misuse(used, numbers)
    shown = _show(value) if value is not None else None
    if problem:
        return Verdict(False, expression, shown, problem)
    if value is None:
        return Verdict(False, expression, None, "divides by zero")
    if value != target:
        return Verdict(False, expression, shown, f"equals {shown}, not {target}")
    return Verdict(True, expression, shown, f"equals {target}, using {' '.join(map(str, used))}")


class _Refused(Exception):
    """The expression is not a Countdown expression; the message says what is wrong."""


def _read(expression: str, target: int) -> tuple[Fraction | None, list[int]]:
    """The exact value (None after a division by zero) and the numbers used, in order of writing."""
    from tools.calc_text import to_source
    from tools.registry import ToolError

    try:
        source = to_source(expression)
        tree = ast.parse(source, mode="eval").body
    except ToolError as exc:
        raise _Refused(f"cannot read it: {exc}") from None
    except (SyntaxError, ValueError):
        raise _Refused("cannot read it: not an arithmetic expression") from None
    if isinstance(tree, ast.Compare):  # `(3 + 5) * 3 = 24`: the expression, and the value it claims
        if len(tree.ops) != 1 or not isinstance(tree.ops[0], ast.Eq):
            raise _Refused("one expression, not a comparison")
        sides = [tree.left, tree.comparators[0]]
        claims = [s for s in sides if isinstance(s, ast.Constant)]
        if len(claims) != 1 or claims[0].value != target:
            raise _Refused(f"write one expression equal to {target}, alone or as `EXPRESSION = {target}`")
        tree = next(s for s in sides if s is not claims[0])
    used: list[int] = []
    return _value(tree, used), used


def _value(node: ast.AST, used: list[int]) -> Fraction | None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise _Refused(f"only whole numbers, not {node.value!r}")
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _value(node.operand, used)
        return None if operand is None else (-operand if isinstance(node.op, ast.USub) else operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        left, right = _value(node.left, used), _value(node.right, used)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return None if right == 0 else left / right
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        raise _Refused("only + - * / and parentheses: no powers")
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else "a function"
        raise _Refused(f"only + - * / and parentheses: no {name}(...)")
    if isinstance(node, ast.Name):
        raise _Refused(f"only numbers: {node.id!r} is a name")
    raise _Refused("only whole numbers, + - * / and parentheses")


def _misuse(used: Sequence[int], numbers: Sequence[int]) -> str:
    """What is wrong with the numbers used, given those allowed ("" if nothing)."""
    given, counted = Counter(numbers), Counter(used)
    for number, times in counted.items():
        if number not in given:
            shown = str(number) if len(str(number)) <= 20 else f"{str(number)[:17]}..."
            return f"uses {shown}, which is not given"
        if times > given[number]:
            return f"uses {number} {_times(times)} (given {_times(given[number])})"
    return ""


def _times(k: int) -> str:
    return {1: "once", 2: "twice"}.get(k, f"{k} times")


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
