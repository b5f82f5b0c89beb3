"""Terminal polish: a failed Python call looks failed, the step line keeps its time when narrow,
one vocabulary for prompt tokens, Ctrl-D leaves the shell prompt on a line of its own, and
`run` shows its answer once."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import call

from agent import Agent
from agent.core.records import Observation, StepFinished
from agent.models.scripted import ScriptedModel
from agent.ui.view import View, fitted
from tools import default_tools

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


class Terminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_python_exception_is_a_failed_call_not_a_success() -> None:
    agent = Agent(ScriptedModel([call("python", code="1 / 0"), "It failed."]), default_tools(["python"]))
    result = agent.run("divide")
    (made,) = result.tool_calls
    assert made.error is True
    assert "ZeroDivisionError" in made.output  # the model still reads the traceback
    out = Terminal()
    view = View(out, color=True, width=100)
    view.begin(at=0.0)
    view.show(Observation(made), at=0.5)
    view.close()
    shown = out.getvalue()
    assert "✗ python" in ESCAPE.sub("", shown)
    assert "\x1b[31m" in shown and "\x1b[32m" not in shown  # red border, no green


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_the_step_line_keeps_the_step_and_its_time_at_any_width(width: int) -> None:
    out = Terminal()
    view = View(out, color=True, width=width, context_size=8192)
    view.begin(at=0.0)
    view.show(StepFinished(1, 1146, 0, 250), at=12.5)
    view.close()
    (line,) = [line for line in ESCAPE.sub("", out.getvalue()).splitlines() if line.startswith("──")]
    assert line.startswith("── step 1 · ")
    assert line.endswith(" · 12.5 s")
    assert len(line) <= width
    if width >= 200:
        assert "prompt 1,146 evaluated + 0 reused" in line and "context 1,396/8,192" in line


def test_fitted_leaves_out_the_middle_parts_last_first() -> None:
    parts = ["step 1", "prompt 10 evaluated + 0 reused", "5 tokens", "context 15", "1.0 s"]
    assert fitted(parts, 200) == " · ".join(parts)
    assert fitted(parts, 50) == "step 1 · prompt 10 evaluated + 0 reused · 1.0 s"
    assert fitted(parts, 5) == "step 1 · 1.0 s"
    assert fitted(parts, 60, drop=(2,)) == "step 1 · prompt 10 evaluated + 0 reused · context 15 · 1.0 s"


def test_prompt_tokens_are_evaluated_and_reused_everywhere(tmp_path: Path) -> None:
    from agent.ui.trace import Tracer, load
    from agent.ui.trace_html import html

    plain, rich = io.StringIO(), Terminal()
    for out, color in ((plain, False), (rich, True)):
        view = View(out, color=color, width=120)
        view.begin(at=0.0)
        view.show(StepFinished(1, 30, 900, 5), at=1.0)
        view.close()
    agent = Agent(ScriptedModel(["4"]), [])
    Tracer(tmp_path / "t.jsonl").attach(agent)
    agent.run("2+2?")
    page = html(load(tmp_path / "t.jsonl"))
    for text in (plain.getvalue(), ESCAPE.sub("", rich.getvalue()), page):
        assert "evaluated" in text and "reused" in text
        assert not re.search(r"\bcached\b|\bnew \+", text)


def test_ctrl_d_leaves_the_shell_prompt_on_a_line_of_its_own() -> None:
    leader, follower = os.openpty()
    chat = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "chat", "--tools", "none", "--max-tokens", "8"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 120
    try:
        while b"you> " not in seen and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                seen += os.read(leader, 4096)
        assert b"you> " in seen, seen
        os.write(leader, b"\x04")  # Ctrl-D at the prompt
        assert chat.wait(timeout=60) == 0
        while select.select([leader], [], [], 0.5)[0]:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if chat.poll() is None:
            chat.kill()
        os.close(leader)
    after = seen[seen.rindex(b"you> ") + len(b"you> ") :]
    assert after.replace(b"\r", b"") == b"\n"  # the shell's prompt starts a line of its own


def test_run_shows_the_workflow_answer_once_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli import options
    from agent.cli.main import main

    flow = tmp_path / "flow.yaml"
    flow.write_text("steps:\n  - id: first\n    prompt: one\n  - id: second\n    prompt: 'two after {{first}}'\n")
    model = ScriptedModel(["The first answer.", "The distinctive final answer."])
    monkeypatch.setattr(options, "make_agent", lambda args: Agent(model, []))
    screen = Terminal()  # stdout and stderr on one terminal, as a user's are
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["run", str(flow)]) == 0
    shown: Any = ESCAPE.sub("", screen.getvalue())
    # The first step's answer in its panel (the live line's transient text aside); the workflow's
    # answer once, at the end, on stdout.
    (panel,) = [i for i, line in enumerate(shown.splitlines()) if line.startswith("╭─ Answer")]
    assert "The first answer." in shown.splitlines()[panel + 1]
    assert shown.rstrip().endswith("\nThe distinctive final answer.")
    assert "│ The distinctive final answer." not in shown
