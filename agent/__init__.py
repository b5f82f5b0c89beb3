"""qwq-agent: a tool-using agent on a local reasoning model.

`from agent import Agent` is the entry point; the heavy pieces (llama.cpp, LangGraph) load only
when an `Agent` is made, so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.api import Agent, Chat
    from agent.records import Result, ToolCall

__all__ = ["Agent", "Chat", "Result", "ToolCall"]


def __getattr__(name: str) -> Any:
    if name in ("Agent", "Chat"):
        from agent import api

        return getattr(api, name)
    if name in ("Result", "ToolCall"):
        from agent import records

        return getattr(records, name)
    raise AttributeError(name)
