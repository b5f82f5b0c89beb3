"""qwq-agent: a tool-using agent on a local reasoning model.

`from agent import Agent` is the entry point; the heavy pieces (llama.cpp, LangGraph) load only
when an `Agent` is made, so importing this package is cheap. The layers, each importing only
those below it: `agent.cli` · `agent.workloads`, `agent.ui` · the facade (`agent.api`,
`agent.sessions`) · `agent.core` · `agent.models` · `tools`, `prompts`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# llama.cpp's CPU threads come from OpenMP (libgomp), whose idle workers spin for 300,000 turns
# before they sleep. On a machine busy with anything else a spinning worker holds the core its
# partner needs. 100 tokens of the embedded model on 2 cores, tokens/s (idle · 3 busy loops):
# libgomp's default 84 · 6; OMP_WAIT_POLICY=PASSIVE 26 · 16-25; 1,000 turns 83 · 20-21.
# libgomp reads this once, when llama_cpp is first imported; a user's own setting wins.
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

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
