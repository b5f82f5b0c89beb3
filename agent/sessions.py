"""Durable sessions: LangGraph checkpoints of agent episodes in one SQLite file.

`open_sessions()` gives a LangGraph `SqliteSaver` (pass it as `Agent(checkpointer=...)`); a
session is a LangGraph thread in it, named by `session=` / `--session NAME`. Every step of an
episode is written before the next one starts, so a conversation continues in another process,
and an episode whose process was killed resumes from its last completed step. `list_sessions`,
`session_info` and `delete_session` back `qwq-agent sessions`.

This module does not run the agent (see `agent.api`), and does not prune old checkpoints: each
step stores the whole state, transcript tokens included, so a long session's file grows with
steps times transcript length; delete sessions you no longer need.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SESSIONS_ENV = "QWQ_SESSIONS"
"""Environment variable naming the sessions file."""

# The records a checkpoint may hold besides plain data: allow-listed, so loading a checkpoint
# never imports anything else (the serializer otherwise accepts any module, with a warning).
_STATE_TYPES = (
    ("agent.parse", "ParsedCall"),
    ("agent.parse", "BadCall"),
    ("agent.transcript", "Call"),
    ("agent.records", "ToolCall"),
)


def default_path() -> Path:
    """`$QWQ_SESSIONS`, else `$XDG_STATE_HOME/qwq-agent/sessions.sqlite` (`~/.local/state/...`)."""
    if os.environ.get(SESSIONS_ENV):
        return Path(os.environ[SESSIONS_ENV]).expanduser()
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "qwq-agent" / "sessions.sqlite"


def serializer() -> Any:
    """LangGraph's serializer, loading only plain data and the agent's own state records."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=_STATE_TYPES)


def open_sessions(path: str | os.PathLike[str] | None = None) -> Any:
    """A LangGraph `SqliteSaver` on the sessions file (created if missing)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    file = Path(path) if path is not None else default_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    # The saver serializes access with its own lock; agents in several threads share it.
    conn = sqlite3.connect(str(file), check_same_thread=False)
    saver = SqliteSaver(conn, serde=serializer())
    saver.setup()
    return saver


@dataclass(frozen=True)
class SessionInfo:
    """What `qwq-agent sessions` shows of one session."""

    name: str
    """The session's name (its LangGraph thread id)."""
    status: str
    """"answered", "no answer", "waiting for approval" or "unfinished" (its process stopped mid-episode)."""
    checkpoints: int
    """Steps stored, across all its episodes."""
    updated: str
    """When its last step was stored (ISO 8601, UTC)."""
    question: str
    """The last question asked."""
    answer: str | None
    """The answer to it, if there is one yet."""
    waiting: dict[str, Any] | None
    """The call waiting for approval: {"tool", "arguments", "reason"}."""
    text: str
    """The whole transcript, as the model reads it."""
    tool_calls: tuple[Any, ...]
    """The last episode's tool calls (`ToolCall`s)."""


def list_sessions(saver: Any) -> list[SessionInfo]:
    """Every session in the file, most recently updated first."""
    with saver.cursor(transaction=False) as cur:
        cur.execute("SELECT DISTINCT thread_id FROM checkpoints WHERE checkpoint_ns = ''")
        names = [row[0] for row in cur.fetchall()]
    infos = [info for name in names if (info := session_info(saver, name)) is not None]
    return sorted(infos, key=lambda i: i.updated, reverse=True)


def session_info(saver: Any, name: str) -> SessionInfo | None:
    """One session's state, or None if there is no such session."""
    found = saver.get_tuple({"configurable": {"thread_id": name, "checkpoint_ns": ""}})
    if found is None:
        return None
    values = found.checkpoint.get("channel_values", {})
    waiting = next((v for _, channel, v in found.pending_writes or () if channel == "__interrupt__"), None)
    if waiting is not None:  # a list of Interrupt records
        first = waiting[0] if isinstance(waiting, list | tuple) else waiting
        waiting = getattr(first, "value", first)
        status = "waiting for approval"
    elif values.get("done"):
        status = "answered" if values.get("answer") is not None else "no answer"
    else:
        status = "unfinished"
    with saver.cursor(transaction=False) as cur:
        cur.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''", (name,))
        count = int(cur.fetchone()[0])
    updated = found.checkpoint.get("ts") or datetime.fromtimestamp(0).isoformat()
    return SessionInfo(
        name=name,
        status=status,
        checkpoints=count,
        updated=updated,
        question=values.get("question", ""),
        answer=values.get("answer"),
        waiting=waiting,
        text=values.get("text", ""),
        tool_calls=tuple(values.get("tool_calls") or ()),
    )


def delete_session(saver: Any, name: str) -> bool:
    """Delete a session and all its checkpoints; False if there was none."""
    if saver.get_tuple({"configurable": {"thread_id": name, "checkpoint_ns": ""}}) is None:
        return False
    saver.delete_thread(name)
    return True


def command(args: Any) -> int:
    """`qwq-agent sessions [list|show|delete|resume] [NAME]`."""
    import json
    import sys

    saver = open_sessions()
    if args.action == "list":
        infos = list_sessions(saver)
        if not infos:
            print(f"no sessions in {default_path()}", file=sys.stderr)
        for each in infos:
            answer = "" if each.answer is None else f" → {_short(each.answer)}"
            print(f"{each.name}\t{each.status}\t{each.updated[:19]}\t{_short(each.question)}{answer}")
        return 0
    if not args.name:
        print(f"qwq-agent: error: sessions {args.action} needs a session name", file=sys.stderr)
        return 2
    info = session_info(saver, args.name)
    if info is None:
        print(f"qwq-agent: error: no session named {args.name!r} in {default_path()}", file=sys.stderr)
        return 2
    if args.action == "delete":
        delete_session(saver, args.name)
        print(f"deleted {args.name}", file=sys.stderr)
        return 0
    if args.action == "show":
        print(f"session:   {info.name}\nstatus:    {info.status}\nupdated:   {info.updated}")
        print(f"steps:     {info.checkpoints}\nquestion:  {info.question}\nanswer:    {info.answer}")
        for call in info.tool_calls:
            print(f"  → {call.name} {json.dumps(call.arguments, ensure_ascii=False)} ← {_short(call.output)}")
        if info.waiting:
            print(f"waiting:   {info.waiting['tool']} {json.dumps(info.waiting['arguments'], ensure_ascii=False)}")
        if args.transcript:
            print("\n" + info.text)
        return 0
    from agent.cli import EXIT_WAITING, make_agent, make_view, with_approvals

    if info.waiting and args.decision is None and args.edit is None and not sys.stdin.isatty():
        print("qwq-agent: error: this session waits for approval: pass --yes, --no or --edit JSON", file=sys.stderr)
        return 2
    edited = json.loads(args.edit) if args.edit else None
    approve = None if not info.waiting else (args.decision != "reject" if args.decision or edited else None)
    args.session = args.name
    agent = make_agent(args)
    view = make_view(args, agent)
    result = None
    if approve is None and info.waiting:  # ask on the terminal
        from agent.cli import ask_approval
        from agent.records import ApprovalRequested

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
    print(result.answer if result.answer is not None else f"(no answer: {result.stop_reason})")
    return 0 if result.answer is not None else 1


def _short(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
