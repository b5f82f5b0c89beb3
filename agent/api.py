"""The Python API: `Agent(model, tools, **options)`, `agent.run(question)`, `agent.stream(question)`.

An `Agent` binds a model, a tool registry and settings to a compiled graph (`agent.graph`), and
turns the graph's state into a `Result` and its custom stream into typed events. A `Chat` is a
multi-turn conversation on one agent: each turn extends the same append-only transcript.

This module does not contain the loop itself, nor any prompt text (see `prompts/`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import prompts
from agent.graph import Budget, Settings, State, ToolChoice, build_graph, recursion_limit
from agent.model import LlamaCppModel, Model
from agent.records import Event, Final, Result
from agent.transcript import Call, Message
from tools import Registry, Tool, default_tools


class Agent:
    """A tool-using agent on a local (or served) model."""

    def __init__(
        self,
        model: Model | str | os.PathLike[str] | None = None,
        tools: Iterable[Tool | Callable[..., Any]] | None = None,
        *,
        system_prompt: str | None = None,
        examples: Iterable[Message] | None = None,
        tool_choice: ToolChoice | None = None,
        max_steps: int = 8,
        max_tokens: int = 4096,
        max_seconds: float | None = None,
        max_tool_seconds: float | None = None,
        checkpointer: Any = None,
        **model_options: Any,
    ) -> None:
        """Make an agent.

        Args:
            model: A `Model`, a GGUF path or hub file, or None for the embedded SmolLM2.
            tools: Tools or plain typed functions; None gives the built-in tools, [] none.
            system_prompt: Replaces the system prompt in prompts/system.md.
            examples: Few-shot messages; by default the one-shot calculator example in
                prompts/one_shot.json when the calculator is among the tools.
            tool_choice: "auto", "required" (the first step must call a tool), "none", or a
                tool's name (the first step must call it). By default "auto" for reasoning
                models and "required" for plain instruct models, which seldom call on their own.
            max_steps: Reasoning steps before the model is asked for its final answer.
            max_tokens: Tokens generated per episode, thoughts included.
            max_seconds: Wall time per episode.
            max_tool_seconds: Time spent in tools per episode.
            checkpointer: A LangGraph checkpointer to persist episodes step by step.
            **model_options: Passed to `LlamaCppModel` when `model` is not a `Model`
                (context_size, n_gpu_layers, threads, seed, sampling, thinking).
        """
        self.model: Model = model if isinstance(model, Model) else LlamaCppModel(model, **model_options)
        self.tools = Registry(default_tools() if tools is None else tools)
        if examples is None:
            examples = _messages("one_shot.json") if "calculator" in self.tools else ()
        self.settings = Settings(
            system_prompt=prompts.text("system.md") if system_prompt is None else system_prompt,
            examples=tuple(examples),
            tool_choice=tool_choice or ("auto" if self.model.thinking else "required"),
            budget=Budget(max_steps, max_tokens, max_seconds, max_tool_seconds),
        )
        self.graph = build_graph(self.model, self.tools, self.settings, checkpointer)
        """The compiled LangGraph graph: embed it as a subgraph or use its stream modes."""

    def run(self, question: str, **config: Any) -> Result:
        """Answer `question`; blocks until the episode ends."""
        result = None
        for event in self.stream(question, **config):
            if isinstance(event, Final):
                result = event.result
        assert result is not None
        return result

    def stream(self, question: str, *, history: State | None = None, **config: Any) -> Iterator[Event]:
        """Answer `question`, yielding events as they happen and a `Final` event last.

        `history` is the state of an earlier episode to continue (see `Chat`); `config` goes to
        LangGraph (a `thread_id` under `configurable` when a checkpointer is attached).
        """
        state: State = {"question": question, **(history or {})}  # type: ignore[typeddict-item]
        config.setdefault("recursion_limit", recursion_limit(self.settings.budget))
        final: State = {}
        for mode, chunk in self.graph.stream(state, config, stream_mode=["custom", "values"]):
            if mode == "custom":
                yield chunk
            else:
                final = chunk
        self.last_state = final
        yield Final(to_result(final))

    def chat(self) -> Chat:
        """A multi-turn conversation whose turns share one append-only transcript."""
        return Chat(self)


class Chat:
    """Several questions in one conversation, each turn extending the same transcript."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.history: State = {}

    def stream(self, question: str) -> Iterator[Event]:
        """Ask the next question; events as in `Agent.stream`."""
        for event in self.agent.stream(question, history=self.history):
            if isinstance(event, Final):
                state = self.agent.last_state
                self.history = {"tokens": state["tokens"], "text": state["text"], "seen": state.get("seen", 0)}
            yield event

    def send(self, question: str) -> Result:
        """Ask the next question and wait for the answer."""
        return [e for e in self.stream(question) if isinstance(e, Final)][-1].result

    def reset(self) -> None:
        """Forget the conversation (the model's cache is simply overwritten next time)."""
        self.history = {}


def to_result(state: State) -> Result:
    """The `Result` of a finished episode's state."""
    return Result(
        answer=state.get("answer"),
        reasoning=state.get("reasoning", ""),
        tool_calls=tuple(state.get("tool_calls", ())),
        stats=state.get("stats", {}),
        stop_reason=state.get("stop_reason", "answer"),
    )


def _messages(name: str) -> list[Message]:
    return [
        Message(m["role"], m["content"], tuple(Call(c["name"], c["arguments"]) for c in m.get("tool_calls", ())))
        for m in prompts.messages(name)
    ]
