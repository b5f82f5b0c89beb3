"""The live status: it starts at once, and its spinner moves."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys

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
