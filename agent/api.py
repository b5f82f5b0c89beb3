"""The Python API: `Agent(model, tools, **options)`, `agent.run(question)`, `agent.stream(question)`.

An `Agent` binds a model, a tool registry and settings to a compiled graph (`agent.graph`), and
turns the graph's state into a `Result` and its custom stream into typed events. A `Chat` is a
multi-turn conversation on one agent: each turn extends the same append-only transcript.

This module does not contain the loop itself, nor any prompt text (see `prompts/`).
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import replace
from typing import Any, Literal

import prompts
from agent.core.graph import State, build_graph, recursion_limit
from agent.core.policy import CODE_TOOLS
from agent.core.records import ApprovalRequested, Event, Final, Result, Verification, Votes
from agent.core.settings import Approval, Budget, Controls, Settings, ToolChoice
from agent.core.transcript import Call, Message
from agent.core.turn import default_hint
from agent.models.llama_cpp import LlamaCppModel
from agent.models.protocol import Model
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
        reasoning: bool | Literal["auto"] = "auto",
        thinking_budget: int | None = None,
        step_thinking_budget: int | None = None,
        min_thinking: int = 0,
        hint: bool | str = False,
        hint_after: int | None = None,
        calls_in_reasoning: Literal["execute", "ignore"] | None = None,
        controls: Controls | None = None,
        verify: bool = False,
        samples: int = 1,
        checkpointer: Any = None,
        approval: Approval = "auto",
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
            reasoning: True or False forces `<think>` mode on or off whatever the model's
                template says; "auto" follows the template.
            thinking_budget: Thinking tokens per episode; at the budget the thought is closed
                for the model and it answers (s1 budget forcing). Never exceeded.
            step_thinking_budget: Thinking tokens per step.
            min_thinking: A thought that ends sooner is extended with "Wait".
            hint: Write a tool hint into the thought (START) on heavy arithmetic, or after
                `hint_after` thinking tokens without a call: True for "Wait, maybe using
                Python here is a good idea.", or the hint text itself.
            hint_after: See `hint`.
            calls_in_reasoning: "execute" or "ignore" a `<tool_call>` written inside the thought;
                by default as the model's template expects (QwQ's: ignore).
            controls: All reasoning controls at once (wait and close texts included); the
                arguments above override its fields.
            verify: After its first answer the model is asked to check it with the tools and
                answer again; `Result.verification` records the outcome.
            samples: Independent episodes per question; the majority answer wins, with its vote
                share in `Result.votes` (self-consistency).
            checkpointer: A LangGraph checkpointer to persist episodes step by step (see
                `agent.sessions.open_sessions` for SQLite); `session=` names a thread in it.
            approval: When a person approves a call: "auto" (tools marked `needs_approval`, and
                code execution once the conversation is tainted: a tool marked `untrusted` was
                called in it, see `Result.tainted`), "always" (also every code execution) or
                "never". A call waiting for approval pauses the episode: the `Result` has
                `stop_reason="approval"` and `resume` continues it.
            **model_options: Passed to `LlamaCppModel` when `model` is not a `Model`
                (context_size, n_gpu_layers, threads, seed, sampling, thinking).
        """
        forced = None if reasoning == "auto" else bool(reasoning)
        if not isinstance(model, Model):
            model_options.setdefault("thinking", forced)
            model = LlamaCppModel(model, **model_options)
        self.model: Model = model
        self.tools = Registry(default_tools() if tools is None else tools)
        thinking = self.model.thinking if forced is None else forced
        base = controls or Controls()
        hint_text = default_hint(self.tools) if hint is True else hint or base.hint
        self.samples = samples
        if samples < 1:
            raise ValueError(f"samples must be at least 1, not {samples}")
        if examples is None:
            examples = _messages("one_shot.json") if "calculator" in self.tools else ()
        self.settings = Settings(
            system_prompt=prompts.text("system.md") if system_prompt is None else system_prompt,
            examples=tuple(examples),
            tool_choice=tool_choice or ("auto" if thinking else "required"),
            budget=Budget(max_steps, max_tokens, max_seconds, max_tool_seconds),
            reasoning=forced,
            controls=replace(
                base,
                thinking_budget=base.thinking_budget if thinking_budget is None else thinking_budget,
                step_thinking_budget=base.step_thinking_budget
                if step_thinking_budget is None
                else step_thinking_budget,
                min_thinking=min_thinking or base.min_thinking,
                hint=hint_text or None,
                hint_after=base.hint_after if hint_after is None else hint_after,
                calls_in_reasoning=calls_in_reasoning or base.calls_in_reasoning,
            ),
            verify=verify,
        )
        self._ephemeral: set[str] = set()
        if checkpointer is None and asks_for_approval(self.tools, approval):
            # An interrupt can only pause on a checkpointer; threads without a session are
            # forgotten once their episode ends.
            from langgraph.checkpoint.memory import InMemorySaver

            from agent.sessions import serializer

            checkpointer = InMemorySaver(serde=serializer())
        self.checkpointer = checkpointer
        self.thread: str | None = None
        """The thread of the last episode, which `resume` continues by default."""
        self.approval = approval
        self.graph = build_graph(self.model, self.tools, self.settings, checkpointer, approval)
        """The compiled LangGraph graph: embed it as a subgraph or use its stream modes."""

    def run(self, question: str, **config: Any) -> Result:
        """Answer `question`; blocks until the episode ends."""
        result = None
        for event in self.stream(question, **config):
            if isinstance(event, Final):
                result = event.result
        assert result is not None
        return result

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
        config.setdefault("recursion_limit", recursion_limit(self.settings.budget))
        if session is not None and self.checkpointer is None:
            raise ValueError("session= needs a checkpointer (see agent.sessions.open_sessions)")
        conversation: dict[str, Any] = {}
        if session is not None and self.samples > 1:
            # Later samples run on threads of their own, each from the session's conversation (and
            # its taint), not from nothing.
            values = self.graph.get_state(self._config(config, session)).values
            conversation = {k: values[k] for k in ("tokens", "text", "seen", "untrusted") if k in values}
        results = []
        configurable = dict(config.get("configurable") or {})
        for sample in range(self.samples):
            seed = getattr(self.model, "seed", None)
            if self.samples > 1 and seed is not None:  # a fixed seed would repeat one episode k times
                self.model.reseed(seed + sample)  # type: ignore[attr-defined]
            state: State = {"question": question, **(conversation if sample else {}), **(history or {})}  # type: ignore[typeddict-item]
            if tainted:
                state["untrusted"] = True
            thread, sample_config = session, config
            if sample and session is not None:  # its own thread, not a checkpoint of the session's
                thread = f"{session}#{sample}"
                sample_config = {**config, "configurable": _without(configurable, "thread_id", "checkpoint_id")}
            episode_config = self._config(sample_config, thread)
            if session is not None and self.graph.get_state(episode_config).next:
                raise ValueError(f"session {session!r} has an unfinished episode: resume it first")
            final, request = yield from self._episode(state, episode_config)
            results.append(to_result(final))
            if session is not None and results[-1].tainted and not results[0].tainted:
                # The session goes on from the first sample's transcript, but web text this sample
                # read sways the vote: the conversation is tainted all the same.
                first = {"thread_id": session, **_without(configurable, "checkpoint_id")}
                self.graph.update_state({"configurable": first}, {"untrusted": True}, as_node="reason")
                results[0] = replace(results[0], tainted=True)
            if request is not None:
                yield Final(replace(results[-1], stop_reason="approval", approval=request))
                return
        yield Final(results[0] if len(results) == 1 else vote(results))

    def resume(
        self, approve: bool | None = None, edited_arguments: dict[str, Any] | None = None, **config: Any
    ) -> Result:
        """Continue a paused or killed episode and wait for it to end; see `resume_stream`."""
        return [e for e in self.resume_stream(approve, edited_arguments, **config) if isinstance(e, Final)][-1].result

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
        graph_input: Any = None  # None continues after the last checkpoint
        if snapshot.interrupts:
            if approve is None:
                raise ValueError(f"session {thread!r} waits for approval: pass approve=True or approve=False")
            from langgraph.types import Command

            graph_input = Command(resume={"approve": approve, "arguments": edited_arguments})
        if snapshot.interrupts and self.approval != "always":
            # The paused call takes the decision only if it asks again on resume, and an agent with
            # a laxer policy than the one that paused (another process, other options) would run
            # it unasked. So that one call runs under "always", then this agent's policy goes on.
            strict = build_graph(self.model, self.tools, self.settings, self.checkpointer, "always")
            yield from self._episode(graph_input, episode_config, strict, interrupt_after=["act"])
            graph_input = None
        final, request = yield from self._episode(graph_input, episode_config)
        result = to_result(final)
        yield Final(result if request is None else replace(result, stop_reason="approval", approval=request))

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
        self, graph_input: Any, config: dict[str, Any], graph: Any = None, **options: Any
    ) -> Generator[Event, None, tuple[State, Any]]:
        """Run the graph until it ends or pauses; returns its state and the pending approval, if any."""
        final: State = {}
        # "sync": a step's checkpoint is on disk before the next step starts, so a SIGKILL never
        # loses a finished tool call.
        durability = "sync" if self.checkpointer is not None else None
        graph = graph or self.graph
        modes = ["custom", "values"]
        for mode, chunk in graph.stream(graph_input, config, stream_mode=modes, durability=durability, **options):
            if mode == "custom":
                yield chunk
            else:
                final = chunk
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
        """An agent sharing this one's model, tools, graph and checkpointer, for use in another thread.

        Episodes keep no state in the agent, but `last_state` and `thread` (what `resume`
        continues) are per caller; the model serializes its callers (or a server does).
        """
        twin = copy.copy(self)
        twin._ephemeral, twin.thread = set(), None
        return twin

    def chat(self, session: str | None = None) -> Chat:
        """A multi-turn conversation whose turns share one append-only transcript.

        With `session`, the conversation lives in the checkpointer and continues across processes.
        """
        return Chat(self, session)


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
        for event in self.agent.stream(question, history=self.history, session=self.session, **config):
            if isinstance(event, Final) and event.result.stop_reason != "approval":
                self.history = _conversation(self.agent.last_state, event.result.tainted)
            yield event

    def resume_stream(
        self, approve: bool | None = None, edited_arguments: dict[str, Any] | None = None
    ) -> Iterator[Event]:
        """Continue the turn paused for approval; events as in `Agent.resume_stream`."""
        for event in self.agent.resume_stream(approve, edited_arguments, session=self.session):
            if isinstance(event, Final) and event.result.stop_reason != "approval":
                self.history = _conversation(self.agent.last_state, event.result.tainted)
            yield event

    def send(self, question: str) -> Result:
        """Ask the next question and wait for the answer."""
        return [e for e in self.stream(question) if isinstance(e, Final)][-1].result

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


def to_result(state: State) -> Result:
    """The `Result` of a finished episode's state."""
    from agent.core.grading import extract_answer, is_equivalent, normalize

    answer = state.get("answer")
    calls = tuple(state.get("tool_calls", ()))
    first = state.get("first_answer")
    verification = None
    if first is not None:
        confirmed = answer is not None and is_equivalent(extract_answer(answer), extract_answer(first))
        verification = Verification(first, len(calls) > state.get("verify_from", 0), confirmed)
    return Result(
        answer=answer,
        reasoning=state.get("reasoning", ""),
        tool_calls=calls,
        stats=state.get("stats", {}),
        stop_reason=state.get("stop_reason", "answer"),
        normalized=None if answer is None else normalize(extract_answer(answer)),
        verification=verification,
        tainted=bool(state.get("untrusted")),
    )


def vote(results: list[Result]) -> Result:
    """The majority answer of independent episodes (self-consistency), with its vote share.

    Answers are grouped by mathematical equivalence; a tie goes to the answer seen first. The
    winning group's first episode is returned, carrying the vote.
    """
    from agent.core.grading import is_equivalent

    groups: list[list[Result]] = []
    for result in results:
        if result.normalized is None:
            continue
        for group in groups:
            if is_equivalent(result.normalized, group[0].normalized or ""):
                group.append(result)
                break
        else:
            groups.append([result])
    winner = max(groups, key=len)[0] if groups else results[0]
    share = max(map(len, groups), default=0) / len(results)
    tainted = any(r.tainted for r in results)  # web text in any episode could have swayed the vote
    return replace(winner, votes=Votes(tuple(r.normalized for r in results), share), tainted=tainted)


def _without(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def _messages(name: str) -> list[Message]:
    return [
        Message(m["role"], m["content"], tuple(Call(c["name"], c["arguments"]) for c in m.get("tool_calls", ())))
        for m in prompts.messages(name)
    ]


def asks_for_approval(tools: Registry, approval: Approval) -> bool:
    """Whether any of these tools could ever wait for a person under this approval policy."""
    return approval != "never" and any(t.needs_approval or t.name in CODE_TOOLS for t in tools.values())
