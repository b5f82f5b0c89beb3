"""End to end on the real embedded model: the agent, the CLI and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent import Agent
from agent.core.records import AnswerText, Final, Observation, StepFinished, ToolCallStarted

pytestmark = pytest.mark.model
QUESTION = "What is 37 * 89 + 12?"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, input=stdin, timeout=300
    )


@pytest.fixture(scope="module")
def agent() -> Agent:
    return Agent(seed=0, context_size=4096)


def test_solve_calls_the_calculator_and_answers(agent: Agent) -> None:
    result = agent.run(QUESTION)
    assert [c.name for c in result.tool_calls] == ["calculator"]
    assert result.tool_calls[0].output == "3305"
    assert result.answer is not None and "3305" in result.answer
    assert result.stop_reason == "answer"


def test_events_stream_in_order_and_reuse_the_prefix(agent: Agent) -> None:
    events = list(agent.stream(QUESTION))
    kinds = [type(e) for e in events]
    first_call = kinds.index(ToolCallStarted)
    assert kinds.index(Observation) == first_call + 1
    assert AnswerText in kinds[first_call:] and kinds[-1] is Final
    steps = [e for e in events if isinstance(e, StepFinished)]
    assert len(steps) >= 2
    stats = events[-1].result.stats  # type: ignore[union-attr]
    for step in stats["per_step"][1:]:
        # From the second step on, only the observation and the new turn's opening are evaluated.
        assert step["prompt_reused"] > step["prompt_evaluated"] > 0
        assert step["prompt_evaluated"] <= step["prompt_new"] + 1
    assert stats["prompt_reused"] == sum(s["prompt_reused"] for s in stats["per_step"])


def test_cli_json_result() -> None:
    done = cli("solve", QUESTION, "--json", "--seed", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"answer", "tool_calls", "stats", "reasoning", "stop_reason"} <= result.keys()
    call = result["tool_calls"][0]
    assert (call["name"], call["output"]) == ("calculator", "3305") and "expression" in call["arguments"]
    assert "3305" in result["answer"]
    assert result["stats"]["steps"] == len(result["stats"]["per_step"]) >= 2
    assert "→ calculator" in done.stderr  # the call was shown while it happened


def test_cli_plain_answer_on_stdout() -> None:
    done = cli("solve", QUESTION, "--seed", "2", "--hide-reasoning")
    assert done.returncode == 0, done.stderr
    assert "3305" in done.stdout and "→" not in done.stdout


def test_chat_session() -> None:
    done = cli("chat", "--seed", "0", stdin="What is 6 * 7?\n/reset\nWhat is 37 * 89 + 12?\n/quit\n")
    assert done.returncode == 0, done.stderr
    answers = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(answers) == 2 and "3305" in answers[1]
    assert "(conversation reset)" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("solve",), "the following arguments are required: question"),
        (("solve", "x", "--max-steps", "0"), "must be a number above zero"),
        (("solve", "x", "--model", "/nonexistent/model.gguf"), "model file not found: /nonexistent/model.gguf"),
        (("solve", "x", "--tool-choice", "abacus"), "--tool-choice 'abacus' is none of the tools; choose one of"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_one_clear_line(args: tuple[str, ...], message: str) -> None:
    done = cli(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "usage:" not in done.stderr  # a line and a hint


def test_no_answer_exits_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from agent import cli as cli_module
    from agent.models.scripted import ScriptedModel

    monkeypatch.setattr("agent.cli.options.make_agent", lambda args: Agent(ScriptedModel(["", ""]), []))
    assert cli_module.main(["solve", "anything"]) == 1
    assert "no answer" in capsys.readouterr().err


def test_help_is_light() -> None:
    code = (
        "import sys, agent.cli; agent.cli.build_parser().format_help(); "
        "heavy = {'llama_cpp', 'langgraph', 'sympy', 'huggingface_hub'} & set(sys.modules); print(sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
