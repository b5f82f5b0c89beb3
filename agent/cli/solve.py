"""`qwq-agent solve QUESTION`: answer one question, streaming the episode to stderr.

The answer goes to stdout (or the whole `Result` as JSON with `--json`); exit 0 answered, 1 no
answer within the budgets, 3 a call waits for approval in its session.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import options
from agent.cli.approvals import with_approvals
from agent.cli.options import EXIT_ANSWERED, EXIT_NO_ANSWER, EXIT_WAITING


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `solve` and its arguments."""
    solve = commands.add_parser("solve", parents=[common], help="answer one question")
    solve.add_argument("question", type=options.question, help="the question, in quotes")
    solve.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    solve.set_defaults(run=run)


NO_ANSWER = {"repetition": "the model kept repeating a call", "no_answer": "the model wrote none, even when asked"}
"""Why an episode ended without an answer, when it was not a budget."""


def run(args: argparse.Namespace) -> int:
    """`qwq-agent solve QUESTION`."""
    agent = options.make_agent(args)
    # On a terminal the answer is printed on stdout at the end; stream it only when stdout is piped.
    view = options.make_view(args, agent, show_answer=not sys.stdout.isatty())
    result = None
    view.begin()
    try:
        for event in with_approvals(agent, agent.stream(args.question, session=args.session), args.session):
            result = view.show(event) or result
    finally:
        view.close()
    assert result is not None
    if args.json:
        from agent.ui.terminal import printable_json

        print(printable_json(result.to_dict()))
    elif result.answer is not None:
        view.answer(result, sys.stdout)
    elif result.stop_reason == "approval":
        return EXIT_WAITING
    else:
        print(
            f"qwq-agent: no answer ({NO_ANSWER.get(result.stop_reason, f'{result.stop_reason} budget reached')})",
            file=sys.stderr,
        )
    return EXIT_ANSWERED if result.answer is not None else EXIT_NO_ANSWER
