"""Chat-completions mode (`--api chat`) against a stand-in of a chat-only server on loopback.

The stand-in answers `/v1/chat/completions` from a list of scripted replies (reasoning in
`reasoning_content` or vLLM's `reasoning`, calls as `tool_calls` or in the text) and records
each request, so the tests check both what the agent made of the replies and what it sent back.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import QWQ_TEMPLATE, add, call

from agent import Agent
from agent.cli import main
from agent.models.openai_chat import OpenAIChatModel


class ChatServer:
    """Plays `replies` (lists of stream deltas, the last with a finish_reason) one per request."""

    def __init__(self, replies: list[list[dict[str, Any]]]) -> None:
        self.replies, self.requests = list(replies), []  # type: ignore[var-annotated]
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                found = {"/v1/models": {"data": [{"id": "chatty"}]}, "/props": {"chat_template": QWQ_TEMPLATE}}
                self._send("application/json", json.dumps(found.get(self.path, {})).encode())

            def do_POST(self) -> None:
                assert self.path == "/v1/chat/completions", self.path
                fake.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                deltas = fake.replies.pop(0)
                events = [{"choices": [{"delta": {k: v for k, v in d.items() if k != "finish"},
                                        "finish_reason": d.get("finish")}]} for d in deltas]  # fmt: skip
                self._send("text/event-stream", "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode())

            def _send(self, kind: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def chat_server() -> Iterator[type[ChatServer]]:
    started: list[ChatServer] = []

    class Started(ChatServer):
        def __init__(self, replies: list[list[dict[str, Any]]]) -> None:
            super().__init__(replies)
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
            started.append(self)

    yield Started
    for s in started:
        s.server.shutdown()
        s.server.server_close()


def tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A streamed `tool_calls` delta, its arguments split in two as servers stream them."""
    text = json.dumps(arguments)
    return {
        "tool_calls": [{"index": 0, "id": "x", "type": "function", "function": {"name": name, "arguments": text[:4]}}]
    }


def rest_of(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(arguments)[4:]}}]}


ADD_THEN_ANSWER = [
    [{"reasoning_content": "I should add "}, {"reasoning_content": "with the tool."},
     tool_call("add", {"a": 2, "b": 3}), {**rest_of({"a": 2, "b": 3}), "finish": "tool_calls"}],
    [{"reasoning": "The tool said 5."}, {"content": "The answer is "}, {"content": "5."}, {"finish": "stop"}],
]  # fmt: skip


def test_tool_calls_and_reasoning_come_back_and_the_loop_keeps_its_reasoning(chat_server: type[ChatServer]) -> None:
    server = chat_server(ADD_THEN_ANSWER + ADD_THEN_ANSWER)
    model = OpenAIChatModel(server.url)
    assert model.thinking  # the served template opens <think>
    chat = Agent(model, [add], examples=(), max_steps=3).chat()
    result = chat.send("What is 2 + 3?")
    assert [(c.name, c.arguments, c.output) for c in result.tool_calls] == [("add", {"a": 2, "b": 3}, "5")]
    assert result.answer == "The answer is 5."
    assert "I should add with the tool." in result.reasoning and "The tool said 5." in result.reasoning
    first, second = server.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["add"] and "grammar" not in first
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert "<tools>" not in first["messages"][0]["content"]  # the tools went as `tools`
    assistant, observation = second["messages"][2:]
    assert assistant["reasoning_content"] == "I should add with the tool."  # kept within the tool loop
    assert assistant["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert observation == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "5"}
    chat.send("And again?")
    third = server.requests[2]["messages"]
    assert [m["role"] for m in third] == ["system", "user", "assistant", "tool", "assistant", "user"]
    # Before the new question, reasoning is dropped, as chat templates drop it; the answers stay.
    assert not any("reasoning_content" in m for m in third) and third[4]["content"] == "The answer is 5."


def test_a_call_written_in_the_text_is_run_too(chat_server: type[ChatServer]) -> None:
    server = chat_server([
        [{"content": "<think>\nAdd them.\n</think>\n\n"}, {"content": call("add", a=20, b=22)}, {"finish": "stop"}],
        [{"content": "42"}, {"finish": "stop"}],
    ])  # fmt: skip
    result = Agent(OpenAIChatModel(server.url), [add], examples=(), max_steps=3).run("20 + 22?")
    assert [c.output for c in result.tool_calls] == ["42"] and result.answer == "42"
    assert result.reasoning.strip() == "Add them."
    assert server.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}


def test_the_cli_speaks_chat_and_shows_the_reasoning(
    chat_server: type[ChatServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = chat_server([[{"reasoning_content": "Two and two make four."}, {"content": "4"}, {"finish": "stop"}]])
    assert main(["solve", "2+2?", "--model", f"openai:{server.url}", "--api", "chat", "--tools", "none"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "4" and "Two and two make four." in err
    assert "tools" not in server.requests[0]
