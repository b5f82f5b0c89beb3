"""`qwq-agent batch TASKS.jsonl -o OUT.jsonl`: answer a file of tasks, resumably, with a progress line.

The batch itself (reading tasks, the append-only output, workers, declined approvals) is the
library `agent.workloads.batch`; this module builds the agent and shows progress.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import options
from agent.cli.options import EXIT_ANSWERED, EXIT_NO_ANSWER, EXIT_USAGE, positive


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `batch` and its arguments."""
    batch = commands.add_parser("batch", parents=[common], help="answer a JSONL file of tasks, resumably")
    batch.add_argument("tasks", metavar="TASKS.jsonl", help='one {"id": ..., "question": ...} per line')
    batch.add_argument("-o", "--output", required=True, metavar="OUT.jsonl", help="results; reruns skip done ids")
    batch.add_argument("--workers", type=positive, default=1, metavar="N", help="episodes at once, decoded together")
    batch.add_argument("--quiet", action="store_true", help="no progress line")
    batch.set_defaults(run=run, hide_reasoning=True)


def run(args: argparse.Namespace) -> int:
    """`qwq-agent batch TASKS.jsonl -o OUT.jsonl [--workers N]`."""
    from agent.workloads.batch import BatchError, Progress, Task, read_tasks, run_batch

    read_tasks(args.tasks)  # a bad file fails before the model loads
    if getattr(args, "session", None):
        raise BatchError("--session does not apply to batches: each task is its own episode")
    agent = options.make_agent(args)
    tty = sys.stderr.isatty()

    def show(p: Progress) -> None:
        if not args.quiet:
            print(("\r\033[K" if tty else "") + p.line(), end="" if tty else "\n", file=sys.stderr, flush=True)

    faults: list[Exception] = []

    def failed(task: Task, exc: Exception) -> None:
        from agent.ui.terminal import printable

        faults.append(exc)
        print(printable(f"qwq-agent: task {task.id} (line {task.line}) failed: {exc}"), file=sys.stderr)

    final = run_batch(agent, args.tasks, args.output, workers=args.workers, progress=show, failed=failed)
    if not args.quiet:
        print(("\r\033[K" if tty else "") + final.line(), file=sys.stderr)
    if final.failed == 0:
        return EXIT_ANSWERED
    from agent.models.protocol import ModelError

    # A server's failure is the environment's, as a bad input is: exit 2; the rerun retries those tasks.
    return EXIT_USAGE if any(isinstance(e, ModelError) for e in faults) else EXIT_NO_ANSWER
