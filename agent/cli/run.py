"""`qwq-agent run WORKFLOW.yaml [--var NAME=VALUE ...]`: run a workflow, each step streamed to stderr.

Loading, checking and running the steps is the library `agent.workloads.workflow`; this module
binds the variables, shows each step and asks for approvals.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli import options
from agent.cli.approvals import with_approvals
from agent.cli.options import EXIT_ANSWERED, EXIT_NO_ANSWER


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `run` and its arguments."""
    command = commands.add_parser("run", parents=[common], help="run a YAML workflow of agent steps")
    command.add_argument("workflow", metavar="WORKFLOW.yaml")
    command.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="set a workflow variable")
    command.add_argument("--json", action="store_true", help="print every step's answer as one JSON object")
    command.set_defaults(run=run, hide_reasoning=True)


def run(args: argparse.Namespace) -> int:
    """`qwq-agent run WORKFLOW.yaml [--var NAME=VALUE ...]`."""
    import sys

    from agent.core.records import Final, Result
    from agent.ui.terminal import printable, printable_json
    from agent.workloads.workflow import Step, load_workflow, parse_vars

    workflow = load_workflow(args.workflow)
    values = workflow.bind(parse_vars(args.var))  # fail before the model loads
    base = options.make_agent(args)  # every step's agent derives from it: its options, trace, sessions

    def ask(agent: Any, step: Step, prompt: str, tainted: bool) -> Result:
        print(printable(f"── {step.id}: {prompt}"), file=sys.stderr)
        # The workflow's answer is printed on stdout at the end: on a terminal, not here as well.
        last = step.id == workflow.output and sys.stdout.isatty()
        view = options.make_view(args, agent, show_answer=not last)
        result = None
        view.begin()
        try:
            for event in with_approvals(agent, agent.stream(prompt, tainted=tainted), None):
                result = view.show(event) or result
                if isinstance(event, Final):
                    result = event.result
        finally:
            view.close()
        assert result is not None
        print(file=sys.stderr)
        return result

    outcome = workflow.run(base, values, ask=ask)
    if args.json:
        steps = {step: result.to_dict() for step, result in outcome.steps}
        print(printable_json({"workflow": workflow.name, "answer": outcome.answer, "steps": steps}))
    elif outcome.answer is not None:
        print(printable(outcome.answer))
    else:
        step, result = outcome.steps[-1]
        print(f"qwq-agent: step {step} gave no answer ({result.stop_reason}); the workflow stopped", file=sys.stderr)
    return EXIT_ANSWERED if outcome.answer is not None else EXIT_NO_ANSWER
