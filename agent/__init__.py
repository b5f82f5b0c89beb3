"""qwq-agent: a tool-using agent on a local reasoning model.

`from agent import Agent` is the entry point; the heavy pieces (llama.cpp, LangGraph) load only
when an `Agent` is made, so importing this package is cheap. The layers, each importing only
those below it: `agent.cli` · `agent.workloads`, `agent.ui` · the facade (`agent.api`,
`agent.sessions`) · `agent.core` · `agent.models` · `tools`, `prompts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent import _moved

if TYPE_CHECKING:
    from agent.api import Agent, Chat
    from agent.core.records import Result, ToolCall
    from agent.core.settings import Budget, Controls, Settings

__all__ = ["Agent", "Budget", "Chat", "Controls", "Result", "Settings", "ToolCall"]

_moved.install()  # old module paths (checkpoints, older programs) keep resolving

_HOMES = {
    "Agent": "agent.api",
    "Chat": "agent.api",
    "Result": "agent.core.records",
    "ToolCall": "agent.core.records",
    "Settings": "agent.core.settings",
    "Budget": "agent.core.settings",
    "Controls": "agent.core.settings",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(name)
