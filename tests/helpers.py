"""Helpers shared by the tests: small tools, a call written as the model writes it, a scripted agent,
and a local stand-in for an OpenAI-compatible server.

`FakeServer` answers `/v1/completions` from a function of the prompt text (FunctionModel-style),
on 127.0.0.1 only, and records every request: tests of the served backend and of the CLI with
`--model openai:URL` need neither a model nor the network.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent import Agent
from agent.core.transcript import Message
from agent.scripted import ScriptedModel
from tools import ToolError, tool

ASSISTANT = "<|im_start|>assistant\n"
QWQ_TEMPLATE = (Path(__file__).parent / "fixtures" / "qwq-32b.chat_template.jinja").read_text()
"""QwQ-32B's own chat template, as its GGUF carries it."""


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
def offline(query: str) -> str:
    """Pretend to search the web.

    Args:
        query: What to look for.
    """
    raise ToolError("search unavailable: network unreachable")


@tool(needs_approval=True)
def remove(path: str) -> str:
    """Remove a file.

    Args:
        path: The file.
    """
    return f"removed {path}"


def call(name: str, **arguments: object) -> str:
    """A tool call as the model writes it."""
    return f'<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(arguments)}}}\n</tool_call>'


def jinja_render(messages: list[Message], tools: list[dict[str, Any]], generation: bool) -> str:
    """Render with QwQ's template as transformers does: sandboxed, trim_blocks/lstrip_blocks, its tojson."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
    dicts = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls
            ]
        dicts.append(d)
    return env.from_string(QWQ_TEMPLATE).render(messages=dicts, tools=tools or None, add_generation_prompt=generation)


def scripted(turns: list[str], *, thinking: bool = False, tools: list[Any] | None = None, **options: Any) -> Agent:
    """An agent on a `ScriptedModel` playing `turns`, with `add` unless told otherwise, no few-shot example."""
    return Agent(ScriptedModel(turns, thinking=thinking), [add] if tools is None else tools, examples=(), **options)


class FakeServer:
    """An OpenAI-compatible completions server answering from `respond(prompt_text)`.

    It streams each reply in pieces of a few characters and ends it as llama.cpp does at the
    stop string; `/props` reports `template` as the model's chat template when one is given.
    `requests` holds every completion request's body. `faults` are played one per request, in
    order, before answering normally: an HTTP status ("503"), "malformed" (a line that is not
    JSON), "die" (the connection drops after a few pieces), "stall" (nothing for 3 s).
    """

    def __init__(self, respond: Callable[[str], str], *, template: str = "", name: str = "fake") -> None:
        """`respond(prompt)` gives the whole assistant turn (after `<think>` when the template
        has one); when the prompt already holds its start, the server sends only the rest."""
        self.respond, self.template, self.name = respond, template, name
        self.requests: list[dict[str, Any]] = []
        self.faults: list[str] = []
        self.url = ""

    @contextmanager
    def running(self) -> Iterator[str]:
        """Serve on a free loopback port; yields the API root (`http://127.0.0.1:PORT/v1`)."""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        try:
            yield self.url
        finally:
            server.shutdown()
            server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._json({"data": [{"id": fake.name}]})
                elif self.path == "/props" and fake.template:
                    self._json({"chat_template": fake.template})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fault = fake.faults.pop(0) if fake.faults else None
                if fault and fault.isdigit():
                    payload = b'{"error": {"message": "simulated failure"}}'
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "stall":
                    time.sleep(3)
                    return
                prompt = body["prompt"]
                reply = fake.respond(prompt)
                written = prompt.rsplit(ASSISTANT, 1)[-1].removeprefix("<think>\n") if ASSISTANT in prompt else ""
                reply = reply[len(written) :] if written and reply.startswith(written) else reply
                stop = next((s for s in body.get("stop") or () if s in reply), None)
                reply, finish = (reply.split(stop)[0], "stop") if stop else (reply, "stop")
                pieces = [reply[i : i + 3] for i in range(0, len(reply), 3)]
                if len(pieces) > body["max_tokens"]:
                    pieces, finish = pieces[: body["max_tokens"]], "length"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if fault == "malformed":
                    self.wfile.write(b"data: {not json\n\n")
                    return
                if fault == "die":
                    for piece in pieces[:2]:
                        self._event({"choices": [{"text": piece, "finish_reason": None}]})
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                for piece in pieces:
                    self._event({"choices": [{"text": piece, "finish_reason": None}]})
                self._event({"choices": [{"text": "", "finish_reason": finish}]})
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, data: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            def _json(self, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
