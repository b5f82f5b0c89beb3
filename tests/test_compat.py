"""The flat layout's module paths keep working: older programs' imports, and the checkpoints it wrote.

The fixture holds sessions written by the flat layout (see fixtures/make_flat_layout_sessions.py):
their records are named `agent.records.ToolCall`, `agent.parse.ParsedCall`, `agent.transcript.Call`.
"""

from __future__ import annotations

import gzip
import importlib
from pathlib import Path

import pytest
from helpers import add

from agent import Agent
from agent.core.parse import ParsedCall
from agent.core.records import ToolCall
from agent.models.scripted import ScriptedModel
from agent.sessions import list_sessions, open_sessions
from tools import tool

FIXTURE = Path(__file__).parent / "fixtures" / "sessions_flat_layout.sqlite.gz"


@tool(needs_approval=True)
def shout(text: str) -> str:
    """Say something loudly.

    Args:
        text: What to say.
    """
    return text.upper()


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("agent.model", "Sampling", "agent.models.protocol"),
        ("agent.model", "Model", "agent.models.protocol"),
        ("agent.model", "LlamaCppModel", "agent.models.llama_cpp"),
        ("agent.model", "resolve_model_path", "agent.models.sources"),
        ("agent.turn", "Controls", "agent.core.settings"),
        ("agent.graph", "Settings", "agent.core.settings"),
        ("agent.records", "ToolCall", "agent.core.records"),
        ("agent.transcript", "Call", "agent.core.records"),
        ("agent.parse", "ParsedCall", "agent.core.parse"),
        ("agent.openai_model", "OpenAIModel", "agent.models.openai"),
        ("agent.workflow", "load_workflow", "agent.workloads.workflow"),
        ("agent.grading", "is_equivalent", "agent.core.grading"),
        ("agent.trace", "Tracer", "agent.ui.trace"),
        ("agent.view", "readable_math", "agent.ui.mathtext"),
        ("agent.scripted", "ScriptedModel", "agent.models.scripted"),
    ],
)
def test_old_module_paths_give_the_new_objects(old: str, name: str, new: str) -> None:
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_an_old_path_names_only_what_its_new_homes_have() -> None:
    records = importlib.import_module("agent.records")
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        records.Nothing  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("agent.nowhere")


def test_checkpoints_of_the_flat_layout_load_and_go_on(tmp_path: Path) -> None:
    db = tmp_path / "sessions.sqlite"
    db.write_bytes(gzip.decompress(FIXTURE.read_bytes()))
    saver = open_sessions(db)
    infos = {info.name: info for info in list_sessions(saver)}
    assert (infos["answered"].status, infos["waiting"].status) == ("answered", "waiting for approval")
    (made,) = infos["answered"].tool_calls
    assert isinstance(made, ToolCall) and (made.name, made.arguments, made.output) == ("add", {"a": 2, "b": 3}, "5")
    pending = saver.get_tuple({"configurable": {"thread_id": "waiting", "checkpoint_ns": ""}})
    assert all(isinstance(p, ParsedCall) for p in pending.checkpoint["channel_values"]["pending"])

    def agent(turns: list[str]) -> Agent:
        return Agent(ScriptedModel(turns), [add, shout], examples=(), system_prompt="Be brief.", checkpointer=saver)

    resumed = agent(["Done."]).resume(approve=True, session="waiting")  # the paused call, approved now
    assert resumed.answer == "Done." and [(c.name, c.output) for c in resumed.tool_calls] == [("shout", "HI")]
    later = agent(["10"])
    assert later.run("And doubled?", session="answered").answer == "10"
    text = later.last_state["text"]
    assert text.index("What is 2 + 3?") < text.index("It is 5.") < text.index("And doubled?")  # one transcript
