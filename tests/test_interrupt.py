"""Ctrl-C: a generation stops within a token or two, and nothing is left running afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent import Agent
from agent.models.scripted import ScriptedModel

LONG = "Write a very long story about a dragon, at least 2000 words."


def _session_processes(sid: int) -> list[int]:
    """Processes still in session `sid` (the run and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session
                found.append(int(entry.name))
    return found


def test_cancel_ends_a_generation_running_in_a_worker_thread() -> None:
    # The graph runs the model in a LangGraph worker thread: cancel() from another thread ends it.
    model = ScriptedModel(["x" * 100_000])
    agent = Agent(model, [], tool_choice="none", max_tokens=100_000)
    seen: list[object] = []

    def cancel_soon() -> None:
        while len(seen) < 5:
            time.sleep(0.01)
        model.cancel()

    threading.Thread(target=cancel_soon).start()
    for event in agent.stream("go"):
        seen.append(event)
    generated = len(model.cache) - len(model.prompts[0])
    assert 0 < generated < 5_000, generated


@pytest.mark.model
def test_sigint_stops_a_real_solve_and_leaves_no_process() -> None:
    out = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "solve", LONG, "--tools", "none", "--max-tokens", "3000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its session id is its pid: every process it starts keeps it
    )
    try:
        assert out.stderr is not None
        assert out.stderr.read(1)  # the answer is under way (streamed on stderr: stdout is not a terminal)
        time.sleep(1)
        sent = time.monotonic()
        out.send_signal(signal.SIGINT)
        code = out.wait(timeout=120)
        took = time.monotonic() - sent
    finally:
        if out.poll() is None:
            os.killpg(out.pid, signal.SIGKILL)
    # Generating to the budget takes minutes here; a cancelled one ends within a token or two.
    assert code == 130
    assert took < 15, took
    assert _session_processes(out.pid) == []
