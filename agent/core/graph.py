"""The agent loop: a LangGraph state machine alternating reasoning steps with tool calls.

    START ─► start ─► reason ──calls?──► act ─► reason … ──answer──► END

`start` opens an episode by appending the question to the transcript (after the system prompt,
tool list and few-shot example when the conversation is new). `reason` lets the model write one
assistant turn: free text while it thinks, a grammar once it opens `<tool_call>`. `act` runs the
calls and appends their observations, one call per superstep so that a checkpointer keeps each
finished one; with nothing to keep them (no checkpointer) they run in the step that wrote them.
When a budget runs out, the next `reason` asks for the final answer instead of raising. The
transcript only ever grows (see `agent.transcript`).

The graph holds no model state: the model and tools are closed over, the transcript is in the
state, so a checkpointer can persist an episode step by step. Budget and prompt policy are
decided here; parsing, tokenizing and tool schemas are not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import get_runtime
from langgraph.types import Command, interrupt

import prompts
from agent.core.formats import for_template
from agent.core.parse import BadCall, ParsedCall
from agent.core.policy import (
    MAX_REPETITIONS,
    approved_call,
    calls_in_thought,
    contradiction,
    is_control_text,
    needs_approval,
    repeated_call,
    run_call,
    same_calls,
)
from agent.core.records import Observation, StepFinished, StepUsage, ToolCall, ToolCallStarted, Usage
from agent.core.settings import Budget, Settings
from agent.core.transcript import Message, Segment, Transcript
from agent.core.turn import Turn
from agent.models.families import thinks
from agent.models.protocol import Model
from tools import Registry


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
    usage: Usage
    final: str | None
    done: bool
    untrusted: bool
    """A tool marked untrusted was called in this conversation (kept across its episodes)."""
    stop_reason: str
    nudge: str | None
    first_answer: str | None
    verify_from: int


Sinks = list[Callable[[Any], None]]
"""Where a run's events go (`run_graph`), in order."""


@dataclass(frozen=True)
class Events:
    """The sinks of a run's events, given as its LangGraph context: the nodes call them directly."""

    sinks: Sinks

    def emit(self, event: Any) -> None:
        """Hand `event` to each sink, in order, on the node's thread."""
        for sink in self.sinks:
            sink(event)


def writer() -> Callable[[Any], None]:
    """The event writer of the node running now: its run's `Events`, or (on LangGraph's server) its stream."""
    context = get_runtime().context
    return context.emit if isinstance(context, Events) else get_stream_writer()


def run_graph(graph: Any, graph_input: Any, config: dict[str, Any], sinks: Sinks, **options: Any) -> Iterator[State]:
    """`graph.stream` of the states after each step, the nodes handing their events to `sinks`.

    Not LangGraph's "custom" stream: that runs every node in a worker thread so that the caller's
    thread can pass each event on as it comes (see `agent.core.relay`); here LangGraph runs each
    node on the caller's thread.
    """
    return iter(graph.stream(graph_input, config, stream_mode="values", context=Events(sinks), **options))


def build_graph(
    model: Model, registry: Registry, settings: Settings, checkpointer: Any = None, *, durable: bool = True
) -> Any:
    """Compile the agent's state machine for one model, one set of tools and one configuration.

    `settings` come resolved from the facade (`agent.api`): its None defaults filled in. With
    `durable=False` (an agent without a checkpointer: nothing persists between steps) the calls run
    inside the step that wrote them, saving LangGraph a superstep per call; with True each call is
    a step of its own, checkpointed before the next starts, as a server's checkpointer needs.
    """
    budget, approval = settings.budget, settings.approval
    tool_choice = settings.tool_choice or "auto"
    use_tools = bool(registry) and tool_choice != "none"
    schemas = registry.schemas() if use_tools else []
    forced = [s for s in schemas if tool_choice in ("required", s["function"]["name"])]
    if tool_choice not in ("auto", "required", "none") and not forced:
        raise ValueError(f"tool_choice names no registered tool: {tool_choice!r}")
    fmt = for_template(
        model.chat_template,
        settings.chat_format or getattr(model, "family", None),  # a GGUF without a template: its architecture
        bos_token=getattr(model, "bos_token", ""),
        reasoning_effort=settings.reasoning_effort,
    )
    open_grammar = fmt.grammar(schemas, opened=True) if schemas else None
    forced_grammar = fmt.grammar(forced, opened=False) if forced else None
    answer_grammar = fmt.answer_grammar()
    thinking = model.thinking if settings.reasoning is None else settings.reasoning
    if settings.reasoning is None and settings.chat_format is not None:
        thinking = thinks(fmt.name)
    controls = replace(settings.controls, close_text=fmt.close_text(settings.controls.close_text))
    in_thought = calls_in_thought(controls.calls_in_reasoning, model.chat_template, model.thinking)

    def tokenize(text: str, special: bool) -> list[int]:
        return model.tokenize(text, special)

    remember_preamble = getattr(model, "preamble", None)

    def start(state: State) -> State:
        transcript = Transcript(tokenize, list(state.get("tokens") or []), state.get("text") or "")
        question = Message("user", state["question"])
        if not transcript.tokens:
            preamble = [Message("system", settings.system_prompt or ""), *(settings.examples or ())]
            segments = fmt.render([*preamble, question], schemas, thinking=thinking)
            head = fmt.render(preamble, schemas, thinking=thinking)
            # Where the preamble renders alone as it does before a question (not Llama 3, whose tools
            # go into the first user turn), every episode opens so: a model may start warm from it.
            if segments[: len(head)] == head and remember_preamble is not None:
                transcript.extend(head)
                remember_preamble(transcript.tokens)
                segments = segments[len(head) :]
            transcript.extend(segments)
        else:
            transcript.extend(fmt.render([question], thinking=thinking))
        return {
            "tokens": transcript.tokens,
            "text": transcript.text,
            "pending": [],
            "tool_calls": [],
            "reasoning": "",
            "answer": None,
            "steps": 0,
            "usage": Usage(),
            "final": None,
            "done": False,
            # Taint belongs to the conversation: web text read earlier in it still steers the model.
            "untrusted": bool(state.get("untrusted")),
            "stop_reason": "answer",
            "nudge": None,
            "first_answer": None,
            "verify_from": 0,
        }

    def over_budget(state: State) -> str | None:
        used = usage_of(state)
        if state["steps"] >= budget.max_steps:
            return "steps"
        if used.generated_tokens >= budget.max_tokens:
            return "tokens"
        if budget.max_seconds is not None and used.time_total_s >= budget.max_seconds:
            return "time"
        if budget.max_tool_seconds is not None and used.time_tools_s >= budget.max_tool_seconds:
            return "tool_time"
        if model.context_size - len(state["tokens"]) < budget.final_tokens + 64:
            return "context"
        return None

    def reason(state: State) -> State:
        began = time.monotonic()
        used = usage_of(state)
        transcript = Transcript(tokenize, list(state["tokens"]), state["text"])
        final = state.get("final") or over_budget(state)
        nudge = prompts.text("final.md", reason=final) if final else state.get("nudge")
        if nudge:
            transcript.extend(fmt.render([Message("user", nudge)], thinking=thinking))
        # With a final answer due, the thought is closed for the model: it answers now.
        opening, opened = fmt.prompt(transcript.text, thinking=thinking, answer_now=bool(final))
        if final:  # and it is begun for it, as s1 writes "Final Answer:" after a forced end of thought
            opening += prompts.text("final_answer.md")
        transcript.extend([Segment(opening, True)])
        prompt_new = len(transcript.tokens) - state.get("seen", 0)
        limit = min(
            model.context_size - len(transcript.tokens),
            budget.final_tokens if final else budget.max_tokens - used.generated_tokens,
        )
        deadline = None if budget.max_seconds is None else began + budget.max_seconds - used.time_total_s
        # A call in the final turn is not run: it ends the turn, and what came before is the answer.
        parser = fmt.parser(schemas, thinking=opened, calls=use_tools, calls_in_thought=in_thought)
        # Qwen3, SmolLM3, gpt-oss open their thought themselves: a forced call waits until it closes.
        parser.thought_expected = fmt.may_open_thought(thinking) and not final
        left = [
            b - used
            for b, used in ((controls.thinking_budget, used.thinking_tokens), (controls.step_thinking_budget, 0))
            if b is not None
        ]
        turn = Turn(
            model,
            parser,
            writer(),
            controls,
            thinking_left=max(0, min(left)) if left else None,
            earlier=state["tool_calls"],
            stop_at_call=bool(final),
            quote=state["question"],
        )
        turn.run(
            transcript.tokens,
            limit,
            deadline,
            open_grammar=None if final else open_grammar,
            # The answer that is due cannot open a call (nor imitate a tool's response): it answers.
            forced_grammar=answer_grammar if final else forced_grammar if state["steps"] == 0 else None,
        )
        seen = len(transcript.tokens) + len(turn.tokens)
        transcript.append_generated(turn.tokens, turn.text)
        transcript.extend([Segment(fmt.end(bool(turn.calls)), True)])

        step = StepUsage(prompt_new, turn.evaluated, turn.reused, turn.generated, turn.thinking_tokens)
        used += Usage.of_step(step, prefill_s=turn.prefill_seconds, seconds=time.monotonic() - began)
        turn.emit(StepFinished(used.steps, turn.evaluated, turn.reused, turn.generated))

        update: State = {
            "tokens": transcript.tokens,
            "text": transcript.text,
            "seen": seen,
            "steps": state["steps"] + 1,
            "usage": used,
            "reasoning": state["reasoning"] + turn.reasoning,
            "final": final,
            "nudge": None,
        }
        if turn.calls and not final:
            return update | {"pending": turn.calls}
        answer = turn.answer()
        if is_control_text(answer):  # our own words echoed back are no answer
            answer = ""
        if answer and settings.verify and state.get("first_answer") is None and not final:
            verify = prompts.text("verify.md")
            return update | {
                "pending": [],
                "first_answer": answer,
                "nudge": verify,
                "verify_from": len(state["tool_calls"]),
            }
        if answer or final:
            return update | {"pending": [], "answer": answer or None, "stop_reason": final or "answer", "done": True}
        return update | {"pending": [], "final": over_budget({**state, **update}) or "no_answer"}

    def act(state: State) -> State:
        # One call per step: each finished call is checkpointed before the next one starts, so an
        # episode killed mid-act resumes without running a finished call twice.
        emit = writer()
        item, rest = state["pending"][0], state["pending"][1:]
        reason_to_ask = needs_approval(registry, item, state["untrusted"], approval)
        earlier = same_calls(state["tool_calls"], item)
        final = state.get("final")
        if earlier:  # a loop: say so instead of running it again, and end it at the second repetition
            emit(ToolCallStarted(earlier[0].name, earlier[0].arguments))
            record = repeated_call(earlier)
            if len(earlier) >= MAX_REPETITIONS:
                rest, final = [], "repetition"
        elif reason_to_ask and isinstance(item, ParsedCall):
            # The node re-runs from its top on resume; nothing before this line has side effects.
            decision = interrupt({"tool": item.call.name, "arguments": item.call.arguments, "reason": reason_to_ask})
            record = approved_call(registry, item, decision, emit)
        else:
            record = run_call(registry, item, emit)
        note = None if earlier else contradiction(state["tool_calls"], record)
        if note:
            record = replace(record, output=f"{record.output}\n{note}")
        transcript = Transcript(tokenize, list(state["tokens"]), state["text"])
        # The first call of a step opens the user turn holding the responses, the last one closes it.
        first = fmt.opens_observations(transcript.text)
        transcript.extend(
            fmt.observation(record.output, name=record.name, open_turn=first, close_turn=not rest, ours=record.ours)
        )
        emit(Observation(record))
        # Text from outside now steers the model too, even through a failure: an error message can
        # repeat what a page said. Approval rules for code read this.
        untrusted = state["untrusted"] or (record.name in registry and registry[record.name].untrusted)
        return {
            "tokens": transcript.tokens,
            "text": transcript.text,
            "pending": rest,
            "final": final,
            "tool_calls": [*state["tool_calls"], record],
            "usage": usage_of(state) + Usage.of_call(record.seconds),
            "untrusted": untrusted,
        }

    def route(update: State) -> str:  # only `reason` ends an episode (`done`)
        return "act" if update["pending"] else END if update.get("done") else "reason"

    def reason_and_act(state: State) -> State:
        update = reason(state)
        while update["pending"]:
            update |= act({**state, **update})
        return update

    graph = StateGraph(State)
    graph.add_node("start", start)
    graph.add_node("reason", routed(reason if durable else reason_and_act, route), destinations=("act", "reason", END))
    graph.add_node("act", routed(act, route), destinations=("act", "reason"))
    graph.add_edge(START, "start")
    graph.add_edge("start", "reason")
    return graph.compile(checkpointer=checkpointer)


def routed(node: Callable[[State], State], route: Callable[[State], str]) -> Callable[[State], Command]:
    """`node`, choosing the next node from its own update.

    A conditional edge would read the whole state back after every step, a cost of every step of
    every episode; each node's update already holds the keys its route reads.
    """

    def run(state: State) -> Command:
        update = node(state)
        return Command(update=update, goto=route(update))

    return run


def usage_of(state: State) -> Usage:
    """The episode's usage so far (none in a checkpoint written before usage was typed)."""
    return state.get("usage") or Usage()


def recursion_limit(budget: Budget) -> int:
    """A LangGraph recursion limit our own budgets always reach first.

    Each tool call is a step of its own, and a call takes at least 8 generated tokens.
    """
    return 2 * budget.max_steps + budget.max_tokens // 8 + 10
