"""Every Python example under examples/ runs, on the embedded model, and does what it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.ui.trace import load

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(name: str, *args: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "QWQ_MODEL"} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_python_example_has_a_test() -> None:
    tested = {"solve.py", "stream_events.py", "custom_tool.py", "subgraph.py", "batch_eval.py", "countdown.py"}
    untested = {p.name for p in EXAMPLES.glob("*.py")} - tested
    assert not untested, f"add a test for {', '.join(sorted(untested))} here: every example must run in CI"


def test_solve() -> None:
    out = run("solve.py")
    assert "answer: " in out and "3305" in out
    assert "tool:   calculator(" in out and "-> 3305" in out and "reused from the KV cache" in out


def test_stream_events_and_its_trace(tmp_path: Path) -> None:
    trace = tmp_path / "stream.jsonl"
    out = run("stream_events.py", str(trace))
    assert "[calling calculator with {'expression':" in out and "[step 2:" in out and "[final answer:" in out
    (episode,) = load(trace).episodes
    assert episode.question == "What is 2^10 - 24?" and episode.result is not None


def test_custom_tool() -> None:
    out = run("custom_tool.py")
    schema = json.loads(out.splitlines()[0].removeprefix("schema: "))
    assert schema["required"] == ["item"] and schema["properties"]["quantity"]["type"] == "integer"
    assert schema["properties"]["item"]["enum"] == ["apple", "bread", "cheese"]
    assert "call:   price({'item':" in out  # the first step was made to call the custom tool
    assert "answer: " in out


def test_subgraph() -> None:
    out = run("subgraph.py")
    assert "agent\\3areason -.-> agent\\3aact;" in out  # the x-ray drawing shows the agent's own nodes
    assert "[agent] calling calculator {'expression':" in out
    assert "invoice: 3 boxes at 17 plus 5 shipping: " in out


def test_batch_eval(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    out = run("batch_eval.py", str(results))
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["mul-add", "power", "sum"]
    assert all({"answer", "correct", "tool_calls", "generated_tokens"} <= r.keys() for r in rows)
    right = sum(r["correct"] for r in rows)
    assert f"accuracy {right}/3" in out


def test_countdown() -> None:
    from agent.workloads.countdown import generate

    out = run("countdown.py", "2")
    instances = generate(2, seed=0)
    for instance in instances:
        assert f"numbers {', '.join(map(str, instance.numbers))} -> target {instance.target}" in out
    verdicts = [line for line in out.splitlines() if line.startswith("  verdict: ")]
    assert len(verdicts) == 2 and all(v.split(": ")[1] in ("right", "wrong") for v in verdicts)
    right = sum(v.startswith("  verdict: right") for v in verdicts)
    assert f"{right}/2 right in " in out
