"""Approvals on a terminal: ask a person about a call that waits, and go on with the answer.

This module only asks and passes events on; the policy of what waits lives in `agent.core.policy`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from agent.core.records import ApprovalRequested, Event, Final
from agent.ui.terminal import printable, printable_json


def with_approvals(runner: Any, events: Iterator[Event], session: str | None) -> Iterator[Event]:
    """Pass events on; at a call waiting for approval, ask on the terminal and go on with the answer.

    `runner` is the `Agent` or `Chat` whose `resume_stream` continues. Without a terminal to ask
    on, the episode stays paused (in its session, if any) and the final result says so.
    """
    while True:
        request = None
        for event in events:
            if isinstance(event, ApprovalRequested):
                request = event
                yield event  # the view lets go of the terminal (its live status line) before we ask
            elif request is None or not isinstance(event, Final) or not sys.stdin.isatty():
                yield event
        if request is None:
            return
        if not sys.stdin.isatty():
            where = f"qwq-agent sessions resume {session} --yes (or --no)" if session else "a --session to resume"
            waits = f"qwq-agent: {request.tool} waits for approval ({request.reason}); needs {where}"
            print(printable(waits), file=sys.stderr)
            return
        approve, edited = ask_approval(request)
        events = runner.resume_stream(approve, edited)


def ask_approval(request: Any) -> tuple[bool, dict[str, Any] | None]:
    """Ask on stderr/stdin: y runs the call, e edits its arguments (JSON), anything else declines."""
    why = {"marked": "this tool asks for approval", "code": "code execution", "untrusted": "code after web text"}
    # The call is the model's (and a session's): shown escaped, so it cannot act on the terminal.
    print(f"\napprove {printable(request.tool)} {printable_json(request.arguments)}?", file=sys.stderr)
    reason = printable(why.get(request.reason, str(request.reason)))
    while True:
        answer = input(f"({reason}) [y]es / [n]o / [e]dit: ").strip().lower()
        if answer in ("y", "yes"):
            return True, None
        if answer in ("e", "edit"):
            try:
                edited = json.loads(input("arguments as JSON: "))
            except ValueError as exc:
                print(f"not JSON: {exc}", file=sys.stderr)
                continue
            if isinstance(edited, dict):
                return True, edited
            print("the arguments must be a JSON object", file=sys.stderr)
            continue
        return False, None
