"""The agent loop: a LangGraph state machine alternating reasoning steps with tool calls.

    START ─► start ─► reason ──calls?──► act ─► reason … ──answer──► END

`start` opens an episode by appending the question to the transcript (after the system prompt,
tool list and few-shot example when the conversation is new). `reason` lets the model write one
assistant turn: free text while it thinks, a grammar once it opens `<tool_call>`. `act` runs the
calls and appends their observations. When a budget runs out, the next `reason` asks for the
final answer instead of raising. The transcript only ever grows (see `agent.transcript`).

The graph holds no model state: the model and tools are closed over, the transcript is in the
state, so a checkpointer can persist an episode step by step. Budget and prompt policy are
decided here; parsing, tokenizing and tool schemas are not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

import prompts
from agent.grammar import tool_call_grammar
from agent.model import Model
from agent.parse import BadCall, CallOpened, Content, Event, ParsedCall, Reasoning, StreamParser
from agent.records import AnswerText, Observation, ReasoningText, StepFinished, ToolCall, ToolCallStarted
from agent.transcript import (
    IM_END,
    THINK_CLOSE,
    Message,
    Segment,
    Transcript,
    assistant_prompt,
    observation,
    render,
)
from tools import Registry, ToolError

ToolChoice = Literal["auto", "required", "none"] | str


@dataclass(frozen=True)
class Budget:
    """Limits on one episode; reaching any of them asks the model for its final answer."""

    max_steps: int = 8
    """Reasoning steps (assistant turns) before the final one."""
    max_tokens: int = 4096
    """Tokens generated across the episode, reasoning included."""
    max_seconds: float | None = None
    """Wall time for the episode."""
    max_tool_seconds: float | None = None
    """Wall time spent inside tools."""
    final_tokens: int = 512
    """Tokens allowed for the forced final answer."""


@dataclass(frozen=True)
class Settings:
    """How an agent prompts and constrains its model."""

    system_prompt: str
    """The system message; the tool list is appended to it as QwQ's template does."""
    examples: tuple[Message, ...] = ()
    """Few-shot messages placed before the first question."""
    tool_choice: ToolChoice = "auto"
    """auto: the model decides; required: the first step must call a tool; none: no tools;
    a tool's name: the first step must call that tool."""
    budget: Budget = Budget()
    """The episode's limits."""


class State(TypedDict, total=False):
    """Everything an episode knows; each node returns the keys it changes."""

    question: str
    tokens: list[int]
    text: str
    seen: int
    pending: list[ParsedCall | BadCall]
    tool_calls: list[ToolCall]
    reasoning: str
    answer: str | None
    steps: int
    stats: dict[str, Any]
    final: str | None
    done: bool
    untrusted: bool
    stop_reason: str


def new_stats() -> dict[str, Any]:
    """Counters of one episode, all zero."""
    return dict.fromkeys(
        (
            "steps",
            "tool_calls",
            "prompt_tokens",
            "prompt_evaluated",
            "prompt_reused",
            "generated_tokens",
            "thinking_tokens",
            "time_prefill_s",
            "time_generate_s",
            "time_tools_s",
            "time_total_s",
        ),
        0,
    ) | {"per_step": []}


def build_graph(model: Model, registry: Registry, settings: Settings, checkpointer: Any = None) -> Any:
    """Compile the agent's state machine for one model, one set of tools and one configuration."""
    budget = settings.budget
    use_tools = bool(registry) and settings.tool_choice != "none"
    schemas = registry.schemas() if use_tools else []
    forced = [s for s in schemas if settings.tool_choice in ("required", s["function"]["name"])]
    if settings.tool_choice not in ("auto", "required", "none") and not forced:
        raise ValueError(f"tool_choice names no registered tool: {settings.tool_choice!r}")
    open_grammar = tool_call_grammar(schemas) if schemas else None
    forced_grammar = tool_call_grammar(forced, opened=False) if forced else None

    def tokenize(text: str, special: bool) -> list[int]:
        return model.tokenize(text, special)

    def start(state: State) -> State:
        transcript = Transcript(tokenize, list(state.get("tokens") or []), state.get("text") or "")
        question = Message("user", state["question"])
        if not transcript.tokens:
            preamble = [Message("system", settings.system_prompt), *settings.examples]
            transcript.extend(render([*preamble, question], schemas))
        else:
            transcript.extend(render([question]))
        return {
            "tokens": transcript.tokens,
            "text": transcript.text,
            "pending": [],
            "tool_calls": [],
            "reasoning": "",
            "answer": None,
            "steps": 0,
            "stats": new_stats(),
            "final": None,
            "done": False,
            "untrusted": False,
            "stop_reason": "answer",
        }

    def over_budget(state: State) -> str | None:
        stats = state["stats"]
        if state["steps"] >= budget.max_steps:
            return "steps"
        if stats["generated_tokens"] >= budget.max_tokens:
            return "tokens"
        if budget.max_seconds is not None and stats["time_total_s"] >= budget.max_seconds:
            return "time"
        if budget.max_tool_seconds is not None and stats["time_tools_s"] >= budget.max_tool_seconds:
            return "tool_time"
        if model.context_size - len(state["tokens"]) < budget.final_tokens + 64:
            return "context"
        return None

    def reason(state: State) -> State:
        began = time.monotonic()
        stats = dict(state["stats"])
        transcript = Transcript(tokenize, list(state["tokens"]), state["text"])
        final = state.get("final") or over_budget(state)
        if final:
            transcript.extend(render([Message("user", prompts.text("final.md", reason=final))]))
        transcript.extend([Segment(assistant_prompt(model.thinking), True)])
        if final and model.thinking:  # the thought is closed for it: answer now
            transcript.extend([Segment("\n" + THINK_CLOSE + "\n\n", True)])
        prompt_new = len(transcript.tokens) - state.get("seen", 0)
        limit = min(
            model.context_size - len(transcript.tokens),
            budget.final_tokens if final else budget.max_tokens - stats["generated_tokens"],
        )
        deadline = None if budget.max_seconds is None else began + budget.max_seconds - stats["time_total_s"]
        parser = StreamParser(thinking=model.thinking and not final, calls=use_tools and not final)
        turn = Turn(model, parser, get_stream_writer())
        turn.run(
            transcript.tokens,
            limit,
            deadline,
            open_grammar=None if final else open_grammar,
            forced_grammar=forced_grammar if state["steps"] == 0 and not final else None,
        )
        seen = len(transcript.tokens) + len(turn.tokens)
        transcript.append_generated(turn.tokens, turn.text)
        transcript.extend([Segment(IM_END + "\n", True)])

        elapsed = time.monotonic() - began
        step = {
            "prompt_new": prompt_new,
            "prompt_evaluated": turn.evaluated,
            "prompt_reused": turn.reused,
            "generated": len(turn.tokens),
        }
        stats["per_step"] = [*stats["per_step"], step]
        for key, value in (
            ("steps", 1),
            ("prompt_tokens", step["prompt_new"]),
            ("prompt_evaluated", turn.evaluated),
            ("prompt_reused", turn.reused),
            ("generated_tokens", len(turn.tokens)),
            ("thinking_tokens", turn.thinking_tokens),
            ("time_prefill_s", turn.prefill_seconds),
            ("time_generate_s", elapsed - turn.prefill_seconds),
            ("time_total_s", elapsed),
        ):
            stats[key] += value
        turn.emit(StepFinished(stats["steps"], turn.evaluated, turn.reused, len(turn.tokens)))

        update: State = {
            "tokens": transcript.tokens,
            "text": transcript.text,
            "seen": seen,
            "steps": state["steps"] + 1,
            "stats": stats,
            "reasoning": state["reasoning"] + turn.reasoning,
            "final": final,
        }
        if turn.calls and not final:
            return update | {"pending": turn.calls}
        answer = turn.answer()
        if answer or final:
            return update | {"pending": [], "answer": answer or None, "stop_reason": final or "answer", "done": True}
        return update | {"pending": [], "final": over_budget({**state, **update}) or "no_answer"}

    def act(state: State) -> State:
        emit = get_stream_writer()
        stats = dict(state["stats"])
        transcript = Transcript(tokenize, list(state["tokens"]), state["text"])
        records: list[ToolCall] = []
        for i, item in enumerate(state["pending"]):
            record = run_call(registry, item, emit)
            records.append(record)
            last = i == len(state["pending"]) - 1
            transcript.extend(observation(record.output, open_turn=i == 0, close_turn=last))
            stats["time_tools_s"] += record.seconds
            stats["time_total_s"] += record.seconds
            emit(Observation(record))
        stats["tool_calls"] += len(records)
        # Text from outside now steers the model too; approval rules for code read this.
        untrusted = state["untrusted"] or any(
            not r.error and r.name in registry and registry[r.name].untrusted for r in records
        )
        return {
            "tokens": transcript.tokens,
            "text": transcript.text,
            "pending": [],
            "tool_calls": state["tool_calls"] + records,
            "stats": stats,
            "untrusted": untrusted,
        }

    def route(state: State) -> str:
        return "act" if state["pending"] else END if state["done"] else "reason"

    graph = StateGraph(State)
    graph.add_node("start", start)
    graph.add_node("reason", reason)
    graph.add_node("act", act)
    graph.add_edge(START, "start")
    graph.add_edge("start", "reason")
    graph.add_conditional_edges("reason", route, ["act", "reason", END])
    graph.add_edge("act", "reason")
    return graph.compile(checkpointer=checkpointer)


MAX_CALL_TOKENS = 1024
"""A call body longer than this is cut off and reported to the model as unclosed."""


class Turn:
    """One assistant turn being generated: free text, then a grammar once a call opens."""

    def __init__(self, model: Model, parser: StreamParser, emit: Callable[[Any], None]) -> None:
        self.model, self.parser, self.emit = model, parser, emit
        self.tokens: list[int] = []
        self.text = self.reasoning = self.content = ""
        self.calls: list[ParsedCall | BadCall] = []
        self.thinking_tokens = self.evaluated = self.reused = 0
        self.prefill_seconds = 0.0
        self.finished = False

    def run(
        self,
        prompt: list[int],
        limit: int,
        deadline: float | None,
        *,
        open_grammar: str | None,
        forced_grammar: str | None,
    ) -> None:
        """Generate until the turn ends, `limit` tokens, or `deadline` (a `time.monotonic` value)."""
        began = time.monotonic()
        # An instruct model is forced from its first token; a thinking one once its thought closes.
        grammar = forced_grammar if self.parser.mode != "think" else None
        first = True
        call_tokens = 0  # tokens inside the current call body
        while len(self.tokens) < limit:
            gen = self.model.generate(prompt + self.tokens, max_tokens=limit - len(self.tokens), grammar=grammar)
            switch = False
            for piece in gen:
                if first:  # later generations in this turn only re-enter after a grammar switch
                    self.prefill_seconds, first = time.monotonic() - began, False
                    self.evaluated, self.reused = gen.evaluated, gen.reused
                if piece.end:
                    self.finished = True
                    break
                self.tokens.append(piece.token)
                self.text += piece.text
                self.thinking_tokens += self.parser.mode == "think"
                call_tokens = call_tokens + 1 if self.parser.mode == "call" else 0
                for event in self.parser.feed(piece.text):
                    self._take(event)
                    if isinstance(event, CallOpened) and grammar is None and open_grammar:
                        grammar, switch = open_grammar, True
                if grammar is None and forced_grammar and self.parser.thought_closed:
                    grammar, switch = forced_grammar, True
                if switch or call_tokens > MAX_CALL_TOKENS or (deadline is not None and time.monotonic() > deadline):
                    break
            gen.close()
            if not switch:
                break
        for event in self.parser.close():
            self._take(event)

    def _take(self, event: Event) -> None:
        if isinstance(event, Reasoning):
            self.reasoning += event.text
            self.emit(ReasoningText(event.text))
        elif isinstance(event, Content):
            self.content += event.text
            self.emit(AnswerText(event.text))
        elif isinstance(event, ParsedCall | BadCall):
            self.calls.append(event)

    def answer(self) -> str:
        """The answer text; a model that ended its turn without closing its thought answered inside it."""
        if self.content.strip() or self.parser.thought_closed or not self.finished:
            return self.content.strip()
        return self.reasoning.strip()


def run_call(registry: Registry, item: ParsedCall | BadCall, emit: Callable[[Any], None]) -> ToolCall:
    """Run one call; mistakes of the model and `ToolError`s become error observations."""
    if isinstance(item, BadCall):
        return ToolCall("", {}, f"error: {item.error}", error=True)
    name, arguments = item.call.name, item.call.arguments
    emit(ToolCallStarted(name, arguments))
    if name not in registry:
        known = ", ".join(registry) or "none"
        return ToolCall(name, arguments, f"error: there is no tool named {name!r}; the tools are: {known}", True)
    began = time.monotonic()
    try:
        output, error = registry[name].invoke(arguments), False
    except ToolError as exc:
        output, error = f"error: {exc}", True
    return ToolCall(name, arguments, output, error, time.monotonic() - began)


def recursion_limit(budget: Budget) -> int:
    """A LangGraph recursion limit our own budgets always reach first."""
    return 2 * budget.max_steps + 10
