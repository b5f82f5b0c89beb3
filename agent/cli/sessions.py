"""`qwq-agent sessions [list|show|delete|resume] [NAME]`: the durable sessions on this machine.

The session store is `agent.sessions`; this module prints it, and resumes an episode (asking
for an approval on the terminal when one is waiting).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.cli import options
from agent.cli.approvals import ask_approval, with_approvals
from agent.cli.options import EXIT_WAITING
from agent.ui.terminal import printable, printable_json


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `sessions` and its arguments."""
    sessions = commands.add_parser("sessions", parents=[common], help="list, show, resume or delete sessions")
    sessions.add_argument("action", nargs="?", choices=("list", "show", "delete", "resume"), default="list")
    sessions.add_argument("name", nargs="?", help="the session (show, delete, resume)")
    decision = sessions.add_mutually_exclusive_group()
    decision.add_argument("--yes", dest="decision", action="store_const", const="approve", help="approve the call")
    decision.add_argument("--no", dest="decision", action="store_const", const="reject", help="decline the call")
    sessions.add_argument("--edit", metavar="JSON", help="approve the call with these arguments instead")
    sessions.add_argument("--transcript", action="store_true", help="show: the whole transcript too")
    sessions.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`qwq-agent sessions [list|show|delete|resume] [NAME]`."""
    from agent.sessions import default_path, delete_session, list_sessions, open_sessions, session_info

    saver = open_sessions()
    if args.action == "list":
        infos = list_sessions(saver)
        if not infos:
            print(f"no sessions in {default_path()}", file=sys.stderr)
        for each in infos:
            answer = "" if each.answer is None else f" → {_short(each.answer)}"
            print(printable(f"{each.name}\t{each.status}\t{each.updated[:19]}\t{_short(each.question)}{answer}"))
        return 0
    if not args.name:
        print(f"qwq-agent: error: sessions {args.action} needs a session name", file=sys.stderr)
        return 2
    info = session_info(saver, args.name)
    if info is None:
        print(printable(f"qwq-agent: error: no session named {args.name!r} in {default_path()}"), file=sys.stderr)
        return 2
    if args.action == "delete":
        delete_session(saver, args.name)
        print(printable(f"deleted {args.name}"), file=sys.stderr)
        return 0
    if args.action == "show":
        # A session holds what the model and its tools wrote: everything is shown escaped.
        lines = [
            f"session:   {info.name}\nstatus:    {info.status}\nupdated:   {info.updated}",
            f"steps:     {info.checkpoints}\nquestion:  {info.question}\nanswer:    {info.answer}",
            *(f"  → {c.name} {printable_json(c.arguments)} ← {_short(c.output)}" for c in info.tool_calls),
        ]
        if info.waiting:
            lines.append(f"waiting:   {info.waiting['tool']} {printable_json(info.waiting['arguments'])}")
        if args.transcript:
            lines.append("\n" + info.text)
        print(printable("\n".join(lines)))
        return 0
    if info.waiting and args.decision is None and args.edit is None and not sys.stdin.isatty():
        print("qwq-agent: error: this session waits for approval: pass --yes, --no or --edit JSON", file=sys.stderr)
        return 2
    edited = json.loads(args.edit) if args.edit else None
    approve = None if not info.waiting else (args.decision != "reject" if args.decision or edited else None)
    args.session = args.name
    agent = options.make_agent(args)
    view = options.make_view(args, agent)
    result = None
    if approve is None and info.waiting:  # ask on the terminal
        from agent.core.records import ApprovalRequested

        approve, edited = ask_approval(ApprovalRequested(**info.waiting))
    view.begin()
    try:
        for event in with_approvals(agent, agent.resume_stream(approve, edited, session=args.name), args.name):
            result = view.show(event) or result
    finally:
        view.close()
    assert result is not None
    if result.stop_reason == "approval":
        return EXIT_WAITING
    print(printable(result.answer if result.answer is not None else f"(no answer: {result.stop_reason})"))
    return 0 if result.answer is not None else 1


def _short(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
