"""The calculator tool: exact, safe, bounded symbolic math on sympy.

`calculate` takes what a model naturally writes (arithmetic with `^`, implicit multiplication,
percentages, thousands separators, superscripts, LaTeX, function calls, and commands such as
`solve x^2 - 5x + 6 = 0`) and answers with the exact result, then ` ≈ ` and a decimal when the
exact form is not an integer: `29/2 ≈ 14.5`. Decimals in the input are exact (`0.1` is `1/10`).
Notation that people read two ways is refused, not guessed (conventions in `calc_text`).

Safe: model text never reaches `eval`, `sympify` or `parse_expr` (all three run Python code). It
is normalised as text (`calc_unicode`, `calc_text`), parsed with `ast`, and an allow-list walk
(`calc_parse`) builds sympy objects from numbers, operators, the constants and functions of
`calc_functions`, and plain symbols. Anything else is refused with `ToolError`.

Bounded: evaluation runs in one long-lived child process (`calc_worker`, driven through
`tools.worker`; started when an agent with the tool is built or on first use, restarted after a
timeout or crash) under a wall-clock timeout and an address-space cap; obvious bombs (towers of
powers, huge factorials) are refused before they are computed. Requests and answers cross the
pipe as JSON text, never as pickles. Importing this module does not import sympy.

It does not: keep variables between calls, plot, do statistics or numeric root finding, accept
LaTeX beyond arithmetic (`\\frac`, `\\sqrt`, `\\binom`, `\\cdot`, ...), or run on Windows (the
worker needs POSIX pipes and `resource`).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from pydantic import Field

from tools.registry import ToolError, tool
from tools.worker import Launch, StartFailed, Worker, WorkerDied, WorkerError, WorkerTimeout

TIMEOUT_SECONDS = 5.0
"""Wall-clock limit of one evaluation; the worker is killed and restarted past it."""
STARTUP_SECONDS = 30.0
"""Limit for the worker to import sympy and report ready (slow CI disks)."""
MAX_INPUT_CHARS = 2000
"""Longest expression accepted; also bounds parse depth and normalisation work."""
CALL_MAX_CHARS = 400
"""Longest expression a model may write in a call (the grammar's bound): room for any real
expression, while a call that rambles on is cut after a few dozen tokens."""
CALL_PATTERN = r"^[0-9A-Za-z(+√π-][^{}#;]*$"
"""An expression in a call starts as math starts (a digit, a name, a parenthesis, a sign: never
empty, never `]`, never `.`: a small model whose quote was forced wrote `.37 * 89 + 12` for
`37 * 89 + 12` through a server's grammar, and `0.5` serves for `.5`) and holds no braces (a
small model that writes `375}}}` thinks it closed the call; arithmetic needs none: `1/2`,
`sqrt(2)`), comments or statements."""


def _launch() -> Launch:
    root = str(Path(__file__).resolve().parents[1])
    boot = f"import sys; sys.path.insert(0, {root!r}); from tools.calc_worker import serve; serve()"
    return Launch([sys.executable, "-I", "-c", boot])


_worker = Worker(_launch, startup_seconds=STARTUP_SECONDS, max_line_bytes=1 << 20)


def calculate(expression: Annotated[str, Field(max_length=CALL_MAX_CHARS, pattern=CALL_PATTERN)]) -> str:
    """Evaluate math exactly with sympy: arithmetic, algebra, calculus, equations.

    The tool for arithmetic: any calculation with numbers, however simple. `^` is a power here.
    Write it as you would on paper: `2^10`, `10²³`, `3(4+5)`, `2x`, `15% of 80`, `1,000 * 3`,
    `5!`, `sqrt(2)/2`, `log(8, 2)`, `cbrt(27)`, `binomial(10, 3)`,
    `gcd(12, 18)`, `solve x^2 - 5x + 6 = 0`, `solve x + y = 3, x - y = 1`, `simplify ...`,
    `expand ...`, `factor ...`, `diff(x^3, x)`, `integrate(x^2, (x, 0, 1))`,
    `limit(sin(x)/x, x, 0)`, `sum(k^2, (k, 1, n))`, `det([[1, 2], [3, 4]])`.
    Constants: pi, e, i, oo. `5!!` is the double factorial (15). A function without
    parentheses takes the next number or name with its power: `ln e^2` is 2, `√2/2` is
    sqrt(2)/2; `sin pi/2` and `sin 2x` are refused as ambiguous: write `sin(pi/2)`.
    The answer is exact, then ≈ a decimal: `1/3 ≈ 0.333333333333333`.

    Args:
        expression: The math to evaluate, as text.
    """
    if len(expression) > MAX_INPUT_CHARS:
        raise ToolError(f"expression too long: {len(expression):,} characters (limit {MAX_INPUT_CHARS:,})")
    try:
        answer = _worker.ask({"expression": expression}, TIMEOUT_SECONDS)
    except WorkerTimeout:
        raise ToolError(
            f"timed out after {TIMEOUT_SECONDS:g} s: too expensive to compute exactly; "
            "simplify the expression or ask for less"
        ) from None
    except StartFailed:
        raise ToolError("the calculator process failed to start") from None
    except WorkerDied:
        raise ToolError("the calculator process crashed (out of memory?); it will restart on the next call") from None
    except WorkerError as exc:
        raise ToolError(f"the calculator process failed: {exc}; it will restart on the next call") from None
    if answer.get("exiting"):
        _worker.stop()
    if "error" in answer:
        raise ToolError(str(answer["error"]))
    return str(answer["result"])


def _start() -> None:
    """The worker's sympy import (about 0.5 s) runs while the model writes the first call."""
    with contextlib.suppress(StartFailed):  # the first call says so
        _worker.start()


calculator = replace(tool(name="calculator")(calculate), prepare=_start)
