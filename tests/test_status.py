"""The live status: it starts at once, and its spinner moves."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from helpers import add, call

from agent.api import Agent
from agent.core.records import PromptRead, ReasoningText
from agent.models.protocol import Generation, Piece
from agent.models.scripted import ScriptedModel
from agent.ui.trace import Tracer, load
from agent.ui.view import View


def test_the_spinner_is_one_object_across_redraws() -> None:
    # A new Spinner per redraw starts from its first frame every time: it never moves.
    view = View(io.StringIO(), color=True, width=60)
    view.begin()
    first, second = view._status().renderables[-1], view._status().renderables[-1]
    assert first is second
    assert "reading the question" in str(second.text)


def test_loading_the_model_is_said_before_anything_else() -> None:
    leader, follower = os.openpty()  # stderr a terminal, as a user's is
    run = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "solve", "hi", "--model", "/nonexistent/model.gguf"],
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    try:
        while b"\n" not in seen and select.select([leader], [], [], 60)[0]:
            try:
                chunk = os.read(leader, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        run.wait(timeout=60)
        os.close(leader)
    text = seen.decode(errors="replace")
    assert "loading model…" in text
    assert text.index("loading model…") < text.index("error")


def test_the_status_says_how_much_prompt_is_being_read() -> None:
    view = View(io.StringIO(), color=True, width=100)
    view.begin()
    view.show(PromptRead(1146, 0))
    assert "reading the prompt: 1,146 tokens…" in str(view._status().renderables[-1].text)
    view.show(PromptRead(40, 1000, saved_cache=True))
    assert "reading the prompt: 40 tokens… (1,000 from the saved prompt cache)" in str(
        view._status().renderables[-1].text
    )
    view.show(ReasoningText("hm"))
    assert "thinking" in str(view._status().renderables[-1].text)
    view.close()


class Announcing(ScriptedModel):
    """A scripted model that says when it starts reading each prompt, as llama.cpp does."""

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        generation = super().generate(prompt, max_tokens=max_tokens, grammar=grammar)
        pieces = generation.pieces

        def announced() -> Iterator[Piece]:
            generation.prompt_known()
            yield from pieces

        generation.pieces = announced()
        return generation


def test_each_step_announces_its_prompt_before_its_first_text(tmp_path: Path) -> None:
    agent = Agent(Announcing([call("add", a=2, b=2), "4"]), [add], tool_choice="auto")
    tracer = Tracer(tmp_path / "t.jsonl")
    tracer.attach(agent)
    events = list(agent.stream("2+2?"))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "PromptRead"
    reads = [e for e in events if isinstance(e, PromptRead)]
    assert len(reads) == 2  # one per step
    first, second = reads
    assert first.reused == 0 and first.evaluated > 50  # the whole preamble
    assert second.reused >= first.evaluated and second.evaluated < first.evaluated  # only what is new
    assert kinds.index("PromptRead", 1) > kinds.index("Observation")
    tracer.close()
    trace = load(tmp_path / "t.jsonl")
    assert [r["evaluated"] for r in trace.episodes[0].records if r["type"] == "prompt"] == [
        first.evaluated,
        second.evaluated,
    ]
