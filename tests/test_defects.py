"""Regression tests for the defects the flat layout caused (issue 16, A to F, and eval's approvals).

Each failed on the code before the layers; the served model in them is `helpers.FakeServer`, a
local OpenAI-compatible stand-in on 127.0.0.1, so the command line runs end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import FakeServer, add, call, remove

from agent import Agent
from agent.cli import main
from agent.core.settings import Controls
from agent.models.openai import OpenAIModel
from agent.models.scripted import ScriptedModel
from agent.ui.trace import Tracer, load
from agent.workloads.batch import run_batch

Serve = Callable[..., FakeServer]
QWQ_TEMPLATE = (Path(__file__).parent / "fixtures" / "qwq-32b.chat_template.jinja").read_text()


def test_a_copies_of_a_traced_agent_run_their_own_episodes(tmp_path: Path) -> None:
    """A: with a tracer attached, `Agent.copy()` ran episodes on the original agent, so a batch
    failed every task whose call needed approval (0 answered of 1)."""
    tasks, out, trace = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl", tmp_path / "trace.jsonl"
    tasks.write_text(json.dumps({"id": 1, "question": "Remove x."}) + "\n")
    agent = Agent(ScriptedModel([call("remove", path="x"), "could not"]), [remove], examples=())
    Tracer(trace).attach(agent)
    final = run_batch(agent, tasks, out)
    assert (final.answered, final.failed) == (1, 0)
    assert json.loads(out.read_text())["answer"] == "could not"
    kinds = [r["type"] for r in load(trace).episodes[0].records]
    assert "approval" in kinds and kinds[-1] == "final"  # both halves of the episode, on the copy


def test_b_run_takes_the_command_lines_options_and_traces_every_step(tmp_path: Path, serve: Serve) -> None:
    """B: `qwq-agent run WORKFLOW` ignored the agent options (`--max-steps 2 --thinking-budget 7`
    gave 8 and None) and `--trace` wrote only the header."""

    def respond(prompt: str) -> str:
        turn = prompt.rsplit("<|im_start|>assistant\n<think>\n", 1)[-1]
        thought = turn.split("</think>")[0] + "</think>\n\n" if "</think>" in turn else "Hmm, " * 30 + "</think>\n\n"
        if "<tools>" not in prompt or "Give your final answer now" in prompt:  # no tools, or the final step
            return thought + "Counted."
        return thought + call("calculator", expression=f"{len(server.requests)} + 1")

    server = serve(respond, template=QWQ_TEMPLATE)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "steps:\n"
        "  - id: count\n    prompt: Count with the calculator.\n    tools: [calculator]\n"
        "  - id: report\n    prompt: 'Report {{count}}.'\n    tools: []\n"
    )
    trace = tmp_path / "trace.jsonl"
    argv = ["run", str(flow), "--model", f"openai:{server.url}", "--max-steps", "2", "--thinking-budget", "7"]
    assert main([*argv, "--trace", str(trace), "--json"]) in (0, 1)
    assert [e.question for e in load(trace).episodes] == ["Count with the calculator.", "Report " + _answer(trace)]
    for episode in load(trace).episodes:
        usage = episode.result["stats"]  # type: ignore[index]
        assert usage["steps"] <= 3 and usage["thinking_tokens"] <= 7  # two steps and the final answer


def _answer(trace: Path) -> str:
    first = load(trace).episodes[0].result
    assert first is not None
    return str(first["answer"]) + "."


def test_c_samples_with_a_seed_on_a_served_model(serve: Serve, capsys: pytest.CaptureFixture[str]) -> None:
    """C: `--samples K --seed S` on an `openai:` model crashed with a traceback (no `reseed`)."""
    server = serve(lambda prompt: "42")
    argv = ["solve", "What is 6 * 7?", "--model", f"openai:{server.url}", "--tools", "none"]
    assert main([*argv, "--samples", "3", "--seed", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["votes"]["share"] == 1.0
    # Independent samples, reproducibly; they run at once (a served model serves several).
    assert sorted(r["seed"] for r in server.requests) == [5, 6, 7]


def test_d_a_chat_goes_on_from_the_winning_sample() -> None:
    """D: a `Chat` with `samples>1` continued from the last sample's transcript, not the winner's:
    the user was shown 5 while the history said 7."""
    model = ScriptedModel(["5", "5", "7", "10", "10", "10"])
    chat = Agent(model, [], examples=(), samples=3).chat()
    assert chat.send("What is 2 + 3?").answer == "5"
    assert chat.send("And doubled?").answer == "10"
    seen = "".join(map(chr, model.prompts[3]))  # what the model read for the second question
    assert "<|im_start|>assistant\n5<|im_end|>\n<|im_start|>user\nAnd doubled?" in seen and "7<|im_end|>" not in seen


def test_d_in_a_session_the_winner_is_what_goes_on(tmp_path: Path) -> None:
    from agent.sessions import open_sessions

    db = tmp_path / "s.sqlite"
    voted = Agent(ScriptedModel(["5", "7", "7"]), [], examples=(), samples=3, checkpointer=open_sessions(db))
    assert voted.run("What is 3 + 4?", session="talk").answer == "7"  # the second sample won, not the first
    later = ScriptedModel(["14"])  # another agent, as in another process, continues the session
    assert Agent(later, [], examples=(), checkpointer=open_sessions(db)).run("Doubled?", session="talk").answer == "14"
    seen = "".join(map(chr, later.prompts[0]))
    assert "assistant\n7<|im_end|>\n<|im_start|>user\nDoubled?" in seen and "5<|im_end|>" not in seen


def test_e_a_served_and_a_local_qwq_treat_a_call_in_the_thought_alike(serve: Serve) -> None:
    """E: the OpenAI model had no `chat_template`, so a served QwQ ran a call written inside its
    thought where a local QwQ leaves it as text."""
    turn = "Maybe " + call("add", a=2, b=2) + " but no.\n</think>\n\n4"
    served = OpenAIModel(serve(lambda prompt: turn, template=QWQ_TEMPLATE).url)
    local = ScriptedModel([turn], thinking=True)
    local.chat_template = QWQ_TEMPLATE
    for model in (served, local):
        result = Agent(model, [add], examples=()).run("2 + 2?")
        assert (result.answer, result.tool_calls) == ("4", ())


def test_f_arguments_override_the_controls_they_come_with() -> None:
    """F: `Agent(controls=Controls(min_thinking=50, hint="H"), min_thinking=0, hint=False)` kept 50
    and "H", though the arguments override."""
    agent = Agent(ScriptedModel([]), [], controls=Controls(min_thinking=50, hint="H"), min_thinking=0, hint=False)
    assert (agent.settings.controls.min_thinking, agent.settings.controls.hint) == (0, None)
    kept = Agent(ScriptedModel([]), [], controls=Controls(min_thinking=50, hint="H"), max_steps=3)
    assert (kept.settings.controls.min_thinking, kept.settings.controls.hint) == (50, "H")


def test_eval_declines_approvals_on_every_worker(tmp_path: Path, serve: Serve) -> None:
    """eval shared one agent across threads and never declined an approval (batch copies and declines)."""

    def respond(prompt: str) -> str:
        if "declined" in prompt:
            return "The answer is " + ("4" if "2 + 2" in prompt else "9") + "."
        return call("python", code="print(1)")

    server = serve(respond)
    data, out = tmp_path / "data.jsonl", tmp_path / "results.jsonl"
    items = [("2 + 2", "4"), ("3 * 3", "9")]
    data.write_text("".join(json.dumps({"id": q, "question": f"{q}?", "answer": a}) + "\n" for q, a in items))
    argv = ["eval", str(data), "-o", str(out), "--model", f"openai:{server.url}", "--tools", "python"]
    assert main([*argv, "--approve", "always", "--workers", "2"]) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["id"], r["correct"], r["stop_reason"]) for r in results) == [
        ("2 + 2", True, "answer"),
        ("3 * 3", True, "answer"),
    ]
