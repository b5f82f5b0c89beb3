"""A `Model` behind `/v1/chat/completions` only: hosted APIs, gateways, Ollama, LM Studio.

The agent still keeps its ChatML transcript (stand-in tokens, as `agent.models.openai`); each
request turns it back into chat messages: the system turn's `<tools>` become `tools`, assistant
turns their content, reasoning and `tool_calls`, `<tool_response>`s tool messages. Reasoning
comes back as `reasoning_content` (llama.cpp, DeepSeek) or `reasoning` (vLLM) and enters the
transcript inside `<think>`, so it is shown and kept; it is sent back for the assistant turns
of the current tool loop (those after the last question), so the server's rendering of the
history, and its prefix cache, stay the same from one step to the next, and dropped before, as
chat templates drop it. `tool_calls` enter the transcript as Hermes `<tool_call>` text; calls
written in the text itself pass through as text, for the agent's parser.

Servers here take no grammar: tool arguments are the server's to get right (a malformed call
goes back to the model as an observation). When the agent stops reading a reply to go on
under a grammar, the rest of that reply is kept and played to the request that continues it.
The default mode stays `/v1/completions`, which keeps the agent's exact transcript.

This module does not start servers.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

from agent.models.chatml import CALL_CLOSE, CALL_OPEN, IM_END, IM_START, THINK_CLOSE, THINK_OPEN
from agent.models.openai import END_TOKEN, OpenAIModel, split_pieces, stand_in, unpack
from agent.models.protocol import Generation, ModelError, Piece, common_prefix

_TOOLS = re.compile(r"\n\n# Tools\n.*?<tools>\n(.*?)\n</tools>.*", re.DOTALL)
_CALL = re.compile(re.escape(CALL_OPEN) + r"\s*(.*?)\s*" + re.escape(CALL_CLOSE), re.DOTALL)
_RESPONSE = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.DOTALL)
KEPT_REPLIES = 16
"""Unread rests of replies kept for the requests that continue them."""


def messages_of(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """A ChatML transcript as chat messages, the tools of its system turn, and the open assistant turn's text."""
    turns = text.split(IM_START)[1:]
    messages: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    calls = 0
    ids: list[str] = []  # ids of the calls not yet answered
    open_turn = ""
    for n, turn in enumerate(turns):
        role, _, body = turn.partition("\n")
        closed = IM_END in body
        body = body.split(IM_END)[0]
        if not closed and n == len(turns) - 1 and role == "assistant":
            open_turn = body
            break
        if role == "system":
            found = _TOOLS.search(body)
            if found:
                tools = [json.loads(line) for line in found.group(1).splitlines() if line.strip()]
                body = body[: found.start()]
            messages.append({"role": "system", "content": body})
        elif role == "user" and body.lstrip().startswith("<tool_response>"):
            for output in _RESPONSE.findall(body):
                messages.append(
                    {"role": "tool", "tool_call_id": ids.pop(0) if ids else f"call_{calls}", "content": output}
                )
        elif role == "assistant":
            reasoning, _, content = body.rpartition(THINK_CLOSE)
            reasoning = reasoning.removeprefix(THINK_OPEN).strip()
            message: dict[str, Any] = {"role": "assistant", "content": _CALL.sub("", content).strip()}
            if reasoning:
                message["reasoning_content"] = reasoning
            made = []
            for raw in _CALL.findall(content):
                try:
                    call = json.loads(raw)
                    name, arguments = str(call["name"]), call.get("arguments", {})
                except (ValueError, KeyError, TypeError):
                    continue  # a malformed call stays out: the observation after it says so
                calls += 1
                ids.append(f"call_{calls}")
                written = json.dumps(arguments, ensure_ascii=False)
                made.append({"id": ids[-1], "type": "function", "function": {"name": name, "arguments": written}})
            if made:
                message["tool_calls"] = made
            messages.append(message)
        else:
            messages.append({"role": role, "content": body})
    # Reasoning is sent back within the current tool loop only (after the last question).
    last_question = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    for m in messages[:last_question]:
        m.pop("reasoning_content", None)
    return messages, [t if "function" in t else {"type": "function", "function": t} for t in tools], open_turn


class OpenAIChatModel(OpenAIModel):
    """A model behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    def __init__(self, base_url: str, **options: Any) -> None:
        """As `OpenAIModel`; no grammar is sent."""
        options["grammar_field"] = None
        super().__init__(base_url, **options)
        self._rests: dict[tuple[int, ...], list[Piece]] = {}  # a reply's unread rest, by the prompt it continues
        self._rest_lock = threading.Lock()

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Stream a reply to the transcript `prompt`, or the rest of one the agent stopped reading."""
        prompt = list(prompt)
        with self._rest_lock:
            rest = self._rests.pop(tuple(prompt), None)
            reused = common_prefix(self._cached, prompt)
            self._cached = list(prompt)
        if rest is not None:
            return Generation(len(prompt), 0, iter(rest[:max_tokens]))
        messages, tools, open_turn = messages_of(unpack(prompt))
        body: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            "max_tokens": max(1, min(max_tokens, self.context_size - len(prompt))),
            "stream": True,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
        }
        written = open_turn.removeprefix(THINK_OPEN).lstrip("\n") if self.thinking else open_turn
        if written:  # the agent wrote into the turn ("Wait", a closed thought): the server continues it
            messages.append({"role": "assistant", "content": open_turn})
        if tools:
            body["tools"] = tools
        if (seed := self._seeds.get()) is not None:
            body["seed"] = seed
        thought_open = self.thinking and THINK_CLOSE not in open_turn
        return Generation(reused, len(prompt) - reused, self._reply(body, prompt, max_tokens, thought_open))

    def _reply(self, body: dict[str, Any], prompt: list[int], max_tokens: int, thought_open: bool) -> Iterator[Piece]:
        pieces = self._pieces_of(body, thought_open)
        sent: list[Piece] = []
        try:
            for piece in pieces:
                if len(sent) >= max_tokens:
                    return
                sent.append(piece)
                yield piece
                if piece.end:
                    return
        except GeneratorExit:
            # The agent stopped to go on under a grammar (or at a budget): keep the rest for it.
            rest = [p for p, _ in zip(pieces, range(max_tokens), strict=False)]
            if rest:
                with self._rest_lock:
                    key = tuple(prompt + [p.token for p in sent if not p.end])
                    self._rests[key] = rest
                    while len(self._rests) > KEPT_REPLIES:
                        self._rests.pop(next(iter(self._rests)))
            raise

    def _pieces_of(self, body: dict[str, Any], thought_open: bool) -> Iterator[Piece]:
        events = self.connection.events(f"{self.base_url}/chat/completions", body)
        with closing(events):  # closing the generation closes the stream at once: the server stops
            yield from self._read_chat(events, thought_open)

    def _read_chat(self, events: Iterator[dict[str, Any]], thought_open: bool) -> Iterator[Piece]:
        calls: dict[int, dict[str, Any]] = {}
        finish = None
        in_thought = thought_open
        inline = reasoned = False
        for event in events:
            choices = event.get("choices")
            if not isinstance(choices, list):
                raise ModelError(f"the model server at {self.base_url} sent an event without choices: {event}"[:300])
            if not choices:  # a usage-only event
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
            text = delta.get("content") or ""
            if reasoning and not in_thought and not thought_open:
                text, reasoning = "", ""  # reasoning from a model not set up to think: not ours to show
            if text and in_thought:
                if not inline and not reasoned and text.lstrip().startswith(THINK_OPEN):
                    inline = True  # a server without a reasoning parser: the thought comes as text
                    text = text.lstrip().removeprefix(THINK_OPEN).lstrip("\n")
                if inline:
                    in_thought = THINK_CLOSE not in text
                else:
                    text, in_thought = "\n" + THINK_CLOSE + "\n\n" + text.lstrip("\n"), False
            reasoned = reasoned or bool(reasoning)
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(int(call.get("index", len(calls))), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            yield from _pieces(reasoning + text)
            finish = choice.get("finish_reason") or finish
            if finish:
                break
        else:
            if finish is None:
                raise ModelError(f"the model server at {self.base_url} ended the stream before the answer did")
        if calls and in_thought:
            yield from _pieces("\n" + THINK_CLOSE + "\n\n")
        for n, call in sorted(calls.items()):
            try:
                arguments = json.loads(call["arguments"] or "{}")
                written = json.dumps({"name": call["name"], "arguments": arguments}, ensure_ascii=False)
            except ValueError:  # the agent's parser reports it to the model
                written = f'{{"name": "{call["name"]}", "arguments": {call["arguments"]}}}'
            yield from _pieces(("\n" if n else "") + f"{CALL_OPEN}\n{written}\n{CALL_CLOSE}")
        if finish in ("stop", "tool_calls"):
            yield Piece(END_TOKEN, "", end=True)

    def describe(self) -> dict[str, Any]:
        """Facts about the served model, for `doctor` and results."""
        return {**super().describe(), "api": "chat"}


def _pieces(text: str) -> Iterator[Piece]:
    for part in split_pieces(text):
        yield Piece(stand_in(part), part)
