"""Model servers that fail, and several servers at once: one-line errors, safe retries, no lost or repeated task.

The servers are `helpers.FakeServer`s on loopback playing faults (HTTP statuses, a line that is
not JSON, a connection dropped mid-answer, a stall) and closed ports standing for servers gone.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import FakeServer, add, call

from agent import Agent
from agent.cli import main
from agent.models import served
from agent.models.openai import OpenAIModel
from agent.models.protocol import ModelError
from agent.models.servers import Endpoints, connect
from agent.workloads.batch import run_batch

Serve = Callable[..., FakeServer]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(served, "RETRY_DELAY", 0.01)


def solver(prompt: str) -> str:
    """A model that adds with a tool (`add`, or the calculator when it has that), then says what it said."""
    last = prompt.rsplit("<|im_start|>user", 1)[-1]  # the few-shot example before it has its own responses
    if "<tool_response>" in last:
        return "The answer is " + last.split("<tool_response>", 1)[1].split("</tool_response>")[0].strip()
    return call("calculator", expression="2 + 3") if '"calculator"' in prompt else call("add", a=2, b=3)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("500", "answered HTTP 500: .*simulated failure"),
        ("400", "answered HTTP 400"),
        ("malformed", "sent a malformed response: '{not json'"),
        ("die", "ended the stream before the answer did"),
        ("stall", "timed out"),
    ],
)
def test_a_failing_request_ends_in_one_line_naming_the_server(serve: Serve, fault: str, message: str) -> None:
    server = serve(lambda prompt: "a long enough answer to be cut")
    model = OpenAIModel(server.url, timeout=1.0)
    server.faults = [fault]
    with pytest.raises(ModelError, match=message) as caught:
        list(model.generate(model.tokenize("hi", True), max_tokens=50))
    assert "\n" not in str(caught.value) and server.url in str(caught.value)
    assert len(server.requests) == 1  # none of these is retried: each may have done work
    assert "".join(p.text for p in model.generate(model.tokenize("hi", True), max_tokens=50))  # it recovers


def test_a_busy_server_is_asked_again(serve: Serve, quick_retries: None) -> None:
    server = serve(lambda prompt: "fine")
    model = OpenAIModel(server.url)
    server.faults = ["503", "429"]
    assert "".join(p.text for p in model.generate(model.tokenize("hi", True), max_tokens=50)) == "fine"
    assert len(server.requests) == 3


def test_an_unreachable_server_or_a_bad_spec_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], quick_retries: None
) -> None:
    dead = closed_port_url()
    assert main(["solve", "2+3?", "--model", f"openai:{dead}", "--tools", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qwq-agent: error: cannot reach the model server at") and "\n" not in err
    assert main(["solve", "2+3?", "--model", "openai:localhost:8080", "--tools", "none"]) == 2
    assert "not a server URL" in capsys.readouterr().err


def test_a_server_failing_in_a_batch_loses_no_episode(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(solver)
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    tasks.write_text("".join(json.dumps({"id": i, "question": f"Task {i}: 2 + 3?"}) + "\n" for i in range(3)))
    argv = ["batch", str(tasks), "-o", str(out), "--model", f"openai:{server.url}", "--tools", "calculator",
            "--max-steps", "3", "--api", "completions"]  # fmt: skip
    server.faults = ["", "500"]  # the first task's second step fails
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "task 0 (line 1) failed: the model server at" in err and "HTTP 500" in err
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == ["1", "2"]
    before = len(server.requests)
    assert main(argv) == 0  # the rerun answers what failed, and only that
    assert all("Task 0:" in b["prompt"] for b in server.requests[before:])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["0", "1", "2"]


def test_several_servers_share_a_batch_and_fail_over_without_running_a_task_twice(
    serve: Serve, tmp_path: Path, quick_retries: None
) -> None:
    one, two = serve(solver), serve(solver)
    servers = tmp_path / "servers.txt"
    servers.write_text(f"# the pool\n{one.url}\n{closed_port_url()}\n{two.url}\n")
    model = connect(str(servers), api="completions")
    # The closed port is left out at the start; a request `one` cannot take goes to `two`.
    assert isinstance(model, Endpoints) and [m.base_url for m in model.models] == [one.url, two.url]
    agent = Agent(model, [add], examples=())

    def batch(ids: range) -> list[dict[str, object]]:
        tasks, out = tmp_path / f"tasks{ids[0]}.jsonl", tmp_path / f"out{ids[0]}.jsonl"
        tasks.write_text("".join(json.dumps({"id": i, "question": f"Task {i}: 2 + 3?"}) + "\n" for i in ids))
        final = run_batch(agent, tasks, out, workers=2)
        assert (final.answered, final.failed) == (len(ids), 0)
        return [json.loads(line) for line in out.read_text().splitlines()]

    records = batch(range(4))
    assert one.requests and two.requests  # two workers, one on each server
    one.faults = ["503"] * 3  # busy for a whole request, retries included: that request goes to `two`
    records += batch(range(4, 8))
    assert sorted(int(str(r["id"])) for r in records) == list(range(8))
    assert all(r["answer"] == "The answer is 5" for r in records)
    busy = [b for b in one.requests if "Task 4:" in b["prompt"] or "Task 5:" in b["prompt"]][:3]
    assert len({b["prompt"] for b in busy}) == 1 and busy[0]["prompt"] in [b["prompt"] for b in two.requests]
    answered = [b for b in one.requests + two.requests if not any(b is x for x in busy)]
    for i in range(8):  # two steps each, each answered once, by one server or the other
        assert sum(f"Task {i}:" in b["prompt"] for b in answered) == 2, i


def test_streamed_pieces_enter_the_transcript_whole(serve: Serve) -> None:
    server = serve(solver)  # it streams 3 characters at a time, across words and tags
    result = Agent(OpenAIModel(server.url), [add], examples=(), max_steps=3).run("Task: 2 + 3?")
    assert result.answer == "The answer is 5"
    assert call("add", a=2, b=3) + "<|im_end|>" in server.requests[-1]["prompt"]  # sent back as it came
