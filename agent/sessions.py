"""Durable sessions: LangGraph checkpoints of agent episodes in one SQLite file.

`open_sessions()` gives a LangGraph `SqliteSaver` (pass it as `Agent(checkpointer=...)`); a
session is a LangGraph thread in it, named by `session=` / `--session NAME`. Every step of an
episode is written before the next one starts, so a conversation continues in another process,
and an episode whose process was killed resumes from its last completed step. `list_sessions`,
`session_info` and `delete_session` back `qwq-agent sessions` (`agent.cli.sessions`).

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
# Checkpoints written before the layers name the old modules, which `agent._moved` resolves.
_STATE_TYPES = (
    ("agent.core.parse", "ParsedCall"),
    ("agent.core.parse", "BadCall"),
    ("agent.core.records", "Call"),
    ("agent.core.records", "ToolCall"),
    ("agent.core.records", "Usage"),
    ("agent.core.records", "StepUsage"),
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
