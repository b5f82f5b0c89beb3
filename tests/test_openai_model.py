"""The OpenAI-compatible backend against a real server: llama-cpp-python's, started here on loopback.

The server runs the embedded SmolLM2 (`python -m llama_cpp.server`, extra `llama-cpp-python[server]`)
with an API key; the tests stream from it, constrain it with a grammar, answer through it with a
tool call, and run a batch with two workers. A stub server on loopback checks `reasoning_content`.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent import Agent
from agent.cli import main
from agent.models.openai import OpenAIModel, pack, split_pieces, unpack
from agent.models.protocol import ModelError
from agent.models.sources import embedded_model_path
from tools import default_tools

KEY = "test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("uvicorn", reason="needs llama-cpp-python[server]")
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "4096", "--api_key", KEY, "--interrupt_requests", "False"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the server did not start within 120 s"
            try:
                if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_stand_in_tokens_round_trip_and_survive_a_checkpoint() -> None:
    text = 'héllo wörld 12345 <|im_start|> 🎉 {"a": [1, 2]}\n\n  x'
    ids = pack(text)
    assert unpack(ids) == text
    assert all(0 < i < 2**63 for i in ids)  # msgpack (the checkpointer) stores them as plain ints
    assert "".join(split_pieces("ünïcödé text 🎉🎉")) == "ünïcödé text 🎉🎉"
    assert all(len(p.encode()) <= 7 for p in split_pieces("ünïcödé text 🎉🎉"))


def test_streams_from_the_server_and_stops_at_the_end_of_the_turn(server: str) -> None:
    model = OpenAIModel(server, api_key=KEY, context_size=4096, seed=0)
    prompt = model.tokenize("<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n", True)
    # A grammar makes the tiny model's turn short and certain: it must end right after it.
    pieces = list(model.generate(prompt, max_tokens=200, grammar='root ::= "Hello there, how are you?"'))
    assert pieces[-1].end and len(pieces) > 3  # streamed piece by piece, then the end of the turn
    assert "".join(p.text for p in pieces) == "Hello there, how are you?"
    assert unpack([p.token for p in pieces[:-1]]) == "Hello there, how are you?"
    limited = list(model.generate(prompt, max_tokens=3))
    assert len(limited) <= 3 and not any(p.end for p in limited)
    again = model.generate(prompt, max_tokens=3)
    list(again)
    assert again.reused == len(prompt) and again.evaluated == 0  # the same prompt: all reusable


def test_the_grammar_constrains_the_server(server: str) -> None:
    model = OpenAIModel(server, api_key=KEY, context_size=4096, seed=0)
    prompt = model.tokenize("<|im_start|>user\nPick a number.<|im_end|>\n<|im_start|>assistant\n", True)
    grammar = 'root ::= "My number is " [1-9] [0-9] [0-9] "."'
    text = "".join(p.text for p in model.generate(prompt, max_tokens=50, grammar=grammar))
    assert text.startswith("My number is ") and len(text) == len("My number is 123.") and text[-4:-1].isdigit()


def test_a_wrong_key_or_no_server_is_a_one_line_model_error(server: str) -> None:
    with pytest.raises(ModelError, match="refused the API key"):
        OpenAIModel(server, api_key="wrong")
    with pytest.raises(ModelError, match="cannot reach the model server"):
        OpenAIModel(f"http://127.0.0.1:{free_port()}/v1", api_key=KEY)


def test_the_agent_answers_through_the_server_with_a_tool_call(server: str) -> None:
    model = OpenAIModel(server, api_key=KEY, context_size=4096, seed=0)
    agent = Agent(model, default_tools(["calculator"]), max_steps=3, approval="never")
    result = agent.run("What is 37 * 89 + 12?")
    assert [(c.name, c.output) for c in result.tool_calls][:1] == [("calculator", "3305")]
    assert result.answer is not None and "3305" in result.answer
    steps = result.stats["per_step"]
    assert steps[1]["prompt_reused"] >= steps[0]["prompt_new"]  # step 2 extends step 1's prompt


def test_batch_with_two_workers_against_the_server(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    questions = ["What is 37 * 89 + 12?", "What is 12 * 12?", "What is 1000 - 1?", "What is 2 ** 10?"]
    tasks.write_text("".join(json.dumps({"id": i, "question": q}) + "\n" for i, q in enumerate(questions)))
    argv = ["batch", str(tasks), "-o", str(out), "--workers", "2", "--model", f"openai:{server}", "--api-key", KEY,
            "--ctx", "4096", "--tools", "calculator", "--max-steps", "3", "--seed", "0"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["0", "1", "2", "3"]
    assert all(r["tool_calls"] and r["tool_calls"][0]["name"] == "calculator" for r in records)
    assert "[4/4]" in capsys.readouterr().err


class _ReasoningServer(http.server.BaseHTTPRequestHandler):
    """A stub of a server that splits the thought into `reasoning_content`."""

    def do_GET(self) -> None:
        self._send(200, "application/json", json.dumps({"data": [{"id": "stub"}]}).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        chunks = [{"reasoning_content": "Two and two"}, {"reasoning_content": " make four."}, {"text": "4"},
                  {"text": "", "finish_reason": "stop"}]  # fmt: skip
        body = "".join(f"data: {json.dumps({'choices': [c]})}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self._send(200, "text/event-stream", body.encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_reasoning_content_is_kept_as_the_thought() -> None:
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReasoningServer)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        model = OpenAIModel(f"http://127.0.0.1:{stub.server_address[1]}/v1", thinking=True)
        result = Agent(model, [], max_steps=1).run("2+2?")
        assert result.reasoning.strip() == "Two and two make four."
        assert result.answer == "4"
    finally:
        stub.shutdown()
