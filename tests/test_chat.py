"""A chat survives a question whose tool fails on a bug, and keeps its conversation.

DESIGN rule 4: a bug of ours raises (so `Chat.send` raises it), but the interactive chat reports
it in one line and goes on, the conversation as it was before the question.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agent import Agent
from agent.models.scripted import ScriptedModel
from agent.sessions import open_sessions
from tools import tool


def call(name: str, **arguments: object) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(arguments)}}}\n</tool_call>'


@tool
def decode(charset: str) -> str:
    """Decode the page with a charset.

    Args:
        charset: The charset it declares.
    """
    return b"caf\xc3\xa9".decode(charset)  # "rot13" raises LookupError: a bug, not a ToolError


TURNS = ["It is 4.", call("decode", charset="rot13"), "It is 8."]


def test_chat_send_raises_the_bug_and_the_conversation_goes_on() -> None:
    agent = Agent(ScriptedModel(TURNS), [decode], examples=())
    chat = agent.chat()
    assert chat.send("What is 2 + 2?").answer == "It is 4."
    with pytest.raises(LookupError):
        chat.send("Read that file")
    assert chat.send("And 4 + 4?").answer == "It is 8."
    text = agent.last_state["text"]
    assert "What is 2 + 2?" in text and "It is 4." in text and "Read that file" not in text


@pytest.mark.parametrize("session", [None, "talk"])
def test_the_chat_command_survives_a_failing_question(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, session: str | None
) -> None:
    from agent import cli

    agents: list[Agent] = []

    def make_agent(args: object) -> Agent:
        checkpointer = open_sessions(tmp_path / "s.sqlite") if session else None
        agents.append(Agent(ScriptedModel(TURNS), [decode], examples=(), checkpointer=checkpointer))
        return agents[-1]

    monkeypatch.setattr("agent.cli.options.make_agent", make_agent)
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 2 + 2?\nRead that file\nAnd 4 + 4?\n"))
    assert cli.main(["chat", *(["--session", session] if session else [])]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["It is 4.", "It is 8."]  # alive after the failure, answering
    failures = [line for line in err.splitlines() if "LookupError" in line]
    assert len(failures) == 1 and "is not a text encoding" in failures[0] and "Traceback" not in err
    text = agents[0].last_state["text"]  # the last question continued the first one's conversation
    assert "What is 2 + 2?" in text and "It is 4." in text and "Read that file" not in text
