"""The Python API: `Agent(model, tools, settings, **options)`, `agent.run(question)`, `agent.stream(question)`.

An `Agent` binds a model, a tool registry and one `Settings` object to a compiled graph
(`agent.graph`), hands every event of every episode to its observers, and turns the graph's
state into a `Result`. A `Chat` is a multi-turn conversation on one agent: each turn extends the
same append-only transcript. `unattended(agent)` answers from many threads with nobody to ask.

This module does not contain the loop itself (`agent.core.graph`), nor any prompt text
(`prompts/`), nor any option's default (`agent.core.settings`).
"""

from __future__ import annotations

import copy
import inspect
import os
import threading
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import prompts
from agent.core.graph import Sinks, State, build_graph, recursion_limit, run_graph
from agent.core.outcome import to_result, vote
from agent.core.policy import could_wait, default_hint
from agent.core.records import ApprovalRequested, Call, Event, Final, Result
from agent.core.relay import relayed
from agent.core.settings import Settings, tool_choice_problem
from agent.core.transcript import Message
from agent.models.families import thinks
from agent.models.llama_cpp import LlamaCppModel
from agent.models.protocol import Model
from agent.observers import Observer
from tools import Registry, Tool, default_tools

MODEL_OPTIONS = tuple(inspect.signature(LlamaCppModel).parameters)[1:]  # all but the path
"""Options of `LlamaCppModel`, taken when the agent loads the model itself."""


class Agent:
    """A tool-using agent on a local (or served) model."""

    def __init__(
        self,
        model: Model | str | os.PathLike[str] | None = None,
        tools: Iterable[Tool | Callable[..., Any]] | None = None,
        settings: Settings | None = None,
        *,
        observers: Iterable[Observer] = (),
        checkpointer: Any = None,
        **options: Any,
    ) -> None:
        """Make an agent.

        Args:
            model: A `Model`, a GGUF path or hub file, or None for the embedded SmolLM2.
            tools: Tools or plain typed functions; None gives the built-in tools, [] none.
            settings: Every option at once (`agent.Settings`, with its `Budget` and `Controls`).
            observers: What sees every event of every episode: a `Tracer`, a `View`, `Metrics`
                (see `agent.observers`).
            checkpointer: A LangGraph checkpointer to persist episodes step by step (see
                `agent.sessions.open_sessions` for SQLite); `session=` names a thread in it.
            **options: Any field of `Settings`, `Budget` or `Controls` by name (`max_steps=4`,
                `thinking_budget=2048`, `hint=True`, `samples=5`, `approval="never"`, ...),
                laid over `settings`: an option given here always wins. `approval`: "auto" (tools
                marked `needs_approval`, and code execution once the conversation is tainted: a
                tool marked `untrusted` was called in it, see `Result.tainted`), "always" or
                "never". When `model` is not a `Model`, also the options of `LlamaCppModel` (context_size, n_gpu_layers,
                threads, seed, sampling, thinking, kv_cache, sequences).
        """
        model_options = {k: options.pop(k) for k in MODEL_OPTIONS if k in options}
        wanted = (settings or Settings()).with_options(**options)
        self.tools = Registry(default_tools() if tools is None else tools)
        self.tools.prepare()  # slow starts (the calculator's sympy) overlap the model's load
        problem = tool_choice_problem(wanted.tool_choice, list(self.tools))
        if problem:  # before a model loads for seconds
            raise ValueError(f"tool_choice {problem}")
        if not isinstance(model, Model):
            model_options.setdefault("thinking", wanted.reasoning)
            model_options.setdefault("sequences", wanted.samples)  # the samples decode together
            model = LlamaCppModel(model, **model_options)
        elif model_options:
            raise TypeError(f"{', '.join(model_options)}: options for loading a model, and this model is loaded")
        self.model: Model = model
        self.wanted = wanted
        """The settings as asked for, before the model and tools filled in their defaults."""
        self.settings = resolved(wanted, model, self.tools)
        """The settings in force."""
        self.observers: list[Observer] = list(observers)
        """What sees every event (append to attach one; `Tracer.attach` does)."""
        self._ephemeral: set[str] = set()
        if checkpointer is None and could_wait(self.tools.values(), self.settings.approval):
            # An interrupt can only pause on a checkpointer; threads without a session are
            # forgotten once their episode ends.
            from langgraph.checkpoint.memory import InMemorySaver

            from agent.sessions import serializer

            checkpointer = InMemorySaver(serde=serializer())
            self._durability = "exit"  # memory dies with the process: a write per step would buy nothing
        else:
            self._durability = "sync"
        self.checkpointer = checkpointer
        self.thread: str | None = None
        """The thread of the last episode, which `resume` continues by default."""
        self.last_state: State = {}
        """The final state of the last episode (the winner's, with `samples`)."""
        self.graph = build_graph(self.model, self.tools, self.settings, checkpointer, durable=checkpointer is not None)
        """The compiled LangGraph graph: embed it as a subgraph or use its stream modes (without a
        checkpointer, calls run in their step: under a parent's, embed `build_graph(durable=True)`)."""

    def derive(self, tools: Iterable[Tool | Callable[..., Any]] | None = None, **options: Any) -> Agent:
        """An agent on this one's model, checkpointer and observers, with other tools or options.

        Options are laid over this agent's own (`derive(max_steps=2)` keeps everything else);
        `tools` replaces its tools when given.
        """
        return Agent(
            self.model,
            self.tools.values() if tools is None else tools,
            self.wanted.with_options(**options),
            observers=self.observers,
            checkpointer=self.checkpointer,
        )

    def run(self, question: str, **config: Any) -> Result:
        """Answer `question`, as `stream` does, and wait for the answer: its nodes tell the observers."""
        history, session, tainted = (config.pop(k, None) for k in ("history", "session", "tainted"))
        return _final(self._observed(question, partial(self._stream, question, history, session, tainted, config)))

    def stream(
        self,
        question: str,
        *,
        history: State | None = None,
        session: str | None = None,
        tainted: bool = False,
        **config: Any,
    ) -> Iterator[Event]:
        """Answer `question`, yielding events as they happen and a `Final` event last.

        `history` is the state of an earlier episode to continue (see `Chat`); `session` names a
        conversation kept by the checkpointer, which the question continues; `tainted` says the
        question itself carries text from outside (an answer that web text steered), so code
        waits for approval as after a web call; `config` goes to LangGraph. A call that needs
        approval ends the stream with an `ApprovalRequested` event and a `Final` whose result
        has `stop_reason="approval"`.
        """
        return self._observed(question, partial(self._stream, question, history, session, tainted, config), relay=True)

    def _stream(
        self, question: str, history: State | None, session: str | None, tainted: bool, config: dict, sinks: Sinks
    ) -> Iterator[Event]:
        if session is not None and self.checkpointer is None:
            raise ValueError("session= needs a checkpointer (see agent.sessions.open_sessions)")
        config.setdefault("recursion_limit", recursion_limit(self.settings.budget))
        samples = self.settings.samples
        conversation: dict[str, Any] = {}
        if session is not None and samples > 1:
            # Later samples run on threads of their own, each from the session's conversation (and
            # its taint), not from nothing.
            values = self.graph.get_state(self._config(config, session)).values
            conversation = {k: values[k] for k in ("tokens", "text", "seen", "untrusted") if k in values}
        configurable = dict(config.get("configurable") or {})

        def episode(sample: int, agent: Agent, sinks: Sinks) -> Generator[Event, None, tuple[State, Any]]:
            if samples > 1 and self.model.seed is not None:  # a fixed seed would repeat one episode k times
                self.model.reseed(self.model.seed + sample)
            state: State = {"question": question, **(conversation if sample else {}), **(history or {})}  # type: ignore[typeddict-item]
            if tainted:
                state["untrusted"] = True
            thread, sample_config = session, config
            if sample and session is not None:  # its own thread, not a checkpoint of the session's
                thread = f"{session}#{sample}"
                sample_config = {**config, "configurable": _without(configurable, "thread_id", "checkpoint_id")}
            episode_config = agent._config(sample_config, thread)
            if session is not None and agent.graph.get_state(episode_config).next:
                raise ValueError(f"session {session!r} has an unfinished episode: resume it first")
            return (yield from agent._episode(state, episode_config, sinks))

        # On a model that decodes several sequences at once, the later samples run meanwhile, each
        # on a twin of this agent in a thread; their events follow the first sample's, in order.
        at_once = samples > 1 and self.model.parallel
        pool = ThreadPoolExecutor(samples - 1, thread_name_prefix="sample") if at_once else None
        later = [pool.submit(_collected, partial(episode, s, self.copy())) for s in range(1, samples)] if pool else []
        results: list[Result] = []
        states: list[State] = []
        try:
            for sample in range(samples):
                if pool is None or sample == 0:
                    final, request = yield from episode(sample, self, sinks)
                else:
                    events, (final, request) = later[sample - 1].result()
                    yield from events
                results.append(to_result(final))
                states.append(final)
                if request is not None:
                    yield Final(replace(results[-1], stop_reason="approval", approval=request))
                    return
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        if samples == 1:
            yield Final(results[0])
            return
        winner, result = vote(results)
        self.last_state = states[winner]  # the conversation goes on from the answer the user is shown
        if session is not None:
            self.thread = session
            update: dict[str, Any] = dict(states[winner]) if winner else {}
            if result.tainted:  # web text any sample read sways the vote: the conversation is tainted
                update["untrusted"] = True
            if update:
                session_config = {"configurable": {"thread_id": session, **_without(configurable, "checkpoint_id")}}
                self.graph.update_state(session_config, update, as_node="reason")
        yield Final(result)

    def resume(
        self, approve: bool | None = None, edited_arguments: dict[str, Any] | None = None, **config: Any
    ) -> Result:
        """Continue a paused or killed episode and wait for it to end; see `resume_stream`."""
        return _final(self.resume_stream(approve, edited_arguments, **config))

    def resume_stream(
        self,
        approve: bool | None = None,
        edited_arguments: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        **config: Any,
    ) -> Iterator[Event]:
        """Continue the episode of `session` (by default the last one), yielding its events.

        An episode waiting for approval needs `approve` (True runs the call, with
        `edited_arguments` instead of the model's if given; False tells the model it was
        declined). An episode whose process died resumes after its last completed step: a
        finished tool call is not run again. Works from another process through a persistent
        checkpointer.
        """
        thread = session or self.thread
        if self.checkpointer is None or thread is None:
            raise ValueError("nothing to resume: pass session= with a checkpointer attached")
        config.setdefault("recursion_limit", recursion_limit(self.settings.budget))
        episode_config = self._config(config, thread)
        snapshot = self.graph.get_state(episode_config)
        if not snapshot.next:
            raise ValueError(f"session {thread!r} has no unfinished episode to resume")
        question = str(snapshot.values.get("question", ""))
        return self._observed(
            question, partial(self._resume, snapshot, approve, edited_arguments, episode_config), relay=True
        )

    def _resume(
        self, snapshot: Any, approve: bool | None, edited: dict[str, Any] | None, config: dict[str, Any], sinks: Sinks
    ) -> Iterator[Event]:
        graph_input: Any = None  # None continues after the last checkpoint
        thread = config["configurable"]["thread_id"]
        if snapshot.interrupts:
            if approve is None:
                raise ValueError(f"session {thread!r} waits for approval: pass approve=True or approve=False")
            from langgraph.types import Command

            graph_input = Command(resume={"approve": approve, "arguments": edited})
        if snapshot.interrupts and self.settings.approval != "always":
            # The paused call takes the decision only if it asks again on resume, and an agent with
            # a laxer policy than the one that paused (another process, other options) would run
            # it unasked. So that one call runs under "always", then this agent's policy goes on.
            always = replace(self.settings, approval="always")
            strict = build_graph(self.model, self.tools, always, self.checkpointer)
            yield from self._episode(graph_input, config, sinks, strict, interrupt_after=["act"])
            graph_input = None
        final, request = yield from self._episode(graph_input, config, sinks)
        result = to_result(final)
        yield Final(result if request is None else replace(result, stop_reason="approval", approval=request))

    def _observed(
        self, question: str, episode: Callable[[Sinks], Iterator[Event]], relay: bool = False
    ) -> Iterator[Event]:
        """The one place observers hear of an episode: each event before the caller gets it.

        Without `relay` the nodes tell the observers theirs themselves (nobody else reads them);
        with it each reaches the caller's loop as it comes, on the caller's thread.
        """
        sinks = [observer.episode(question, self.model) for observer in self.observers]
        events = relayed(lambda emit: episode([emit])) if relay else episode(sinks)
        for event in events:
            for sink in sinks:
                sink(event)
            yield event

    def _config(self, config: dict[str, Any], thread: str | None) -> dict[str, Any]:
        """LangGraph config naming the episode's thread (a fresh, forgettable one without a session)."""
        if self.checkpointer is None:
            return config
        configurable = dict(config.get("configurable") or {})
        if "thread_id" not in configurable:
            if thread is None:
                thread = uuid.uuid4().hex
                self._ephemeral.add(thread)
            configurable["thread_id"] = thread
        self.thread = configurable["thread_id"]
        return {**config, "configurable": configurable}

    def _episode(
        self, graph_input: Any, config: dict[str, Any], sinks: Sinks, graph: Any = None, **options: Any
    ) -> Generator[Event, None, tuple[State, Any]]:
        """Run the graph until it ends or pauses; returns its state and the pending approval, if any."""
        final: State = {}
        # "sync": a step's checkpoint is on disk before the next step starts, so a SIGKILL never
        # loses a finished tool call; the agent's own in-memory checkpointer writes only at the end
        # (or at a pause for approval).
        durability = self._durability if self.checkpointer is not None else None
        graph = graph or self.graph
        for final in run_graph(graph, graph_input, config, sinks, durability=durability, **options):  # noqa: B007
            pass  # the last state is the episode's
        request = None
        if self.checkpointer is not None:
            # The thread's latest state: a config naming a checkpoint (see `rewind`) would read that one.
            latest = {"configurable": {k: v for k, v in config["configurable"].items() if k != "checkpoint_id"}}
            snapshot = self.graph.get_state(latest)
            final = snapshot.values or final
            thread = config["configurable"]["thread_id"]
            asked = [i.value for i in snapshot.interrupts if isinstance(i.value, dict) and "tool" in i.value]
            if asked:
                request = ApprovalRequested(**asked[0])
                yield request
            elif not snapshot.next and thread in self._ephemeral:
                self._ephemeral.discard(thread)
                self.checkpointer.delete_thread(thread)
        self.last_state = final
        return final, request

    def rewind(self, session: str) -> dict[str, Any]:
        """Config that continues `session` from its last finished episode, if its latest one is not.

        LangGraph forks the thread from that checkpoint; the unfinished steps stay in its history.
        """
        if self.checkpointer is None:
            return {}
        config = {"configurable": {"thread_id": session}}
        if not self.graph.get_state(config).next:
            return {}
        for snapshot in self.graph.get_state_history(config):
            if not snapshot.next and snapshot.values.get("done"):
                return {"configurable": dict(snapshot.config["configurable"])}
        self.checkpointer.delete_thread(session)  # its first episode never finished: start afresh
        return {}

    def copy(self) -> Agent:
        """An agent sharing this one's model, tools, graph, checkpointer and observers, for another thread.

        Episodes keep no state in the agent, but `last_state` and `thread` (what `resume`
        continues) are per caller; the model serializes its callers (or a server does).
        """
        twin = copy.copy(self)
        twin._ephemeral, twin.thread, twin.last_state = set(), None, {}
        twin.observers = list(self.observers)  # the same observers; attaching one to the twin leaves this agent be
        return twin

    def chat(self, session: str | None = None) -> Chat:
        """A multi-turn conversation whose turns share one append-only transcript.

        With `session`, the conversation lives in the checkpointer and continues across processes.
        """
        return Chat(self, session)


def _collected(
    episode: Callable[[Sinks], Generator[Event, None, tuple[State, Any]]],
) -> tuple[list[Event], tuple[State, Any]]:
    """Run an episode to its end: its events, and what it returned."""
    events: list[Event] = []
    running = episode([events.append])
    while True:
        try:
            events.append(next(running))
        except StopIteration as stop:
            return events, stop.value


class Chat:
    """Several questions in one conversation, each turn extending the same transcript."""

    def __init__(self, agent: Agent, session: str | None = None) -> None:
        self.agent = agent
        self.session = session
        self.history: State = {}

    def stream(self, question: str) -> Iterator[Event]:
        """Ask the next question; events as in `Agent.stream`.

        In a session, an episode left unfinished (stopped with Ctrl-C, or left waiting for
        approval) is dropped: the question continues the conversation as it was before it.
        """
        config = self.agent.rewind(self.session) if self.session is not None else {}
        yield from self._kept(self.agent.stream(question, history=self.history, session=self.session, **config))

    def resume_stream(
        self, approve: bool | None = None, edited_arguments: dict[str, Any] | None = None
    ) -> Iterator[Event]:
        """Continue the turn paused for approval; events as in `Agent.resume_stream`."""
        yield from self._kept(self.agent.resume_stream(approve, edited_arguments, session=self.session))

    def _kept(self, events: Iterator[Event]) -> Iterator[Event]:
        """Pass events on; once the turn is over, its transcript is the conversation's."""
        for event in events:
            if isinstance(event, Final) and event.result.stop_reason != "approval":
                self.history = _conversation(self.agent.last_state, event.result.tainted)
            yield event

    def send(self, question: str) -> Result:
        """Ask the next question and wait for the answer."""
        return _final(self.stream(question))

    def reset(self) -> None:
        """Forget the conversation, and with it the taint of any web text read in it.

        The next question starts a new transcript (in a session too, whose earlier checkpoints
        stay in its history); the model's cache is simply overwritten.
        """
        self.history = {"tokens": [], "text": "", "seen": 0, "untrusted": False}


def _conversation(state: State, tainted: bool) -> State:
    """What the next question of a chat continues from: the transcript, and whether it is tainted
    (by this episode, by an earlier one, or by another sample behind the vote)."""
    return {
        "tokens": state["tokens"],
        "text": state["text"],
        "seen": state.get("seen", 0),
        "untrusted": tainted or bool(state.get("untrusted")),
    }


def unattended(agent: Agent) -> Callable[[str], Result]:
    """`run(question) -> Result` for many threads and nobody to ask (batches, evaluations).

    Each thread runs on its own copy of `agent`, and a call that waits for approval is declined:
    the model is told, and goes on without it.
    """
    local = threading.local()

    def run(question: str) -> Result:
        if not hasattr(local, "agent"):
            local.agent = agent.copy()
        result = local.agent.run(question)
        while result.stop_reason == "approval":
            result = local.agent.resume(approve=False)
        return result

    return run


def resolved(settings: Settings, model: Model, tools: Registry) -> Settings:
    """`settings` with the defaults that depend on the model and the tools filled in."""
    if settings.samples < 1:
        raise ValueError(f"samples must be at least 1, not {settings.samples}")
    thinking = model.thinking if settings.reasoning is None else settings.reasoning
    if settings.reasoning is None and settings.chat_format is not None:  # as the graph decides
        thinking = thinks(settings.chat_format)
    examples = settings.examples
    if examples is None:  # the one-shot example, when every tool it calls is at hand
        shot = one_shot()
        examples = shot if all(c.name in tools for m in shot for c in m.tool_calls) else ()
    hint = settings.controls.hint
    controls = replace(settings.controls, hint=default_hint(list(tools.values())) if hint is True else hint or None)
    return replace(
        settings,
        system_prompt=prompts.text("system.md") if settings.system_prompt is None else settings.system_prompt,
        examples=tuple(examples),
        tool_choice=settings.tool_choice or ("auto" if thinking else "required"),
        controls=controls,
    )


def _without(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def one_shot() -> tuple[Message, ...]:
    """The few-shot example of prompts/one_shot.json."""
    return tuple(
        Message(m["role"], m["content"], tuple(Call(c["name"], c["arguments"]) for c in m.get("tool_calls", ())))
        for m in prompts.messages("one_shot.json")
    )


def _final(events: Iterator[Event]) -> Result:
    result = None
    for event in events:
        if isinstance(event, Final):
            result = event.result
    assert result is not None, "an episode ends with a Final event"
    return result
