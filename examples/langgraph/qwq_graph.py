"""The agent's graph for LangGraph's own server: `langgraph dev` in this folder serves it as "agent".

    cd examples/langgraph && langgraph dev --host 127.0.0.1 --port 2024 --no-browser

A client (`langgraph_sdk`) creates a thread and runs `input={"question": ...}`; the answer is
the thread's `answer`, and the agent's events (reasoning text, tool calls, observations) come
through `stream_mode="custom"`. A call that needs a person pauses the run as a LangGraph
interrupt (`{"tool", "arguments", "reason"}`); `Command(resume={"approve": True})` (or False,
or `"arguments": {...}` edited) continues it. The server keeps threads and checkpoints itself,
so the graph is compiled here without a checkpointer.

The model is the embedded SmolLM2 unless `QWQ_MODEL` names another (a GGUF, a hub file, or
`openai:URL[,URL...]` for model servers, with `QWQ_API`); `QWQ_TOOLS` (default "calculator")
and `QWQ_APPROVAL` (default "auto") choose tools and approvals. A run may override each in
`config={"configurable": {"model": ..., "tools": ..., "approval": ...}}`; an agent is built
once per distinct choice and then reused.

This module only builds graphs; it starts no server. It is not called graph.py: `langgraph` is
a namespace package, and a script run from examples/ would import that file as `langgraph.graph`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from agent import Agent
from agent.core.graph import build_graph
from tools import default_tools

_built: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def _model(spec: str) -> Any:
    if spec.startswith("openai:"):
        from agent.models.servers import connect

        return connect(spec.removeprefix("openai:"), api=os.environ.get("QWQ_API", "auto"))
    return spec or None  # a path or hub file is loaded by the Agent; None: the embedded model


async def make_graph(config: dict[str, Any] | None = None) -> Any:
    """The compiled graph for a run's configuration (the server calls this per run, in its event loop).

    Loading a model and its tools blocks, so it runs in a worker thread, not in the loop.
    """
    return await asyncio.to_thread(graph_for, config)


def graph_for(config: dict[str, Any] | None = None) -> Any:
    """The compiled graph for a configuration: built at the first run that asks for it, then reused."""
    chosen = dict((config or {}).get("configurable") or {})
    key = (
        str(chosen.get("model") or os.environ.get("QWQ_MODEL", "")),
        str(chosen.get("tools") or os.environ.get("QWQ_TOOLS", "calculator")),
        str(chosen.get("approval") or os.environ.get("QWQ_APPROVAL", "auto")),
    )
    with _lock:
        if key not in _built:
            spec, tools, approval = key
            seed = os.environ.get("QWQ_SEED")
            options: dict[str, Any] = {"approval": approval}
            if seed is not None and not spec.startswith("openai:"):
                options["seed"] = int(seed)
            agent = Agent(_model(spec), default_tools([t for t in tools.split(",") if t]), **options)
            _built[key] = build_graph(agent.model, agent.tools, agent.settings)
        return _built[key]
