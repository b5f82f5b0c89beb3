"""Observers see every event of every episode, from one place, on the agent and on its copies."""

from __future__ import annotations

import io
from typing import Any

from helpers import add, call

from agent import Agent
from agent.core.records import ApprovalRequested, Event, Final, Observation
from agent.models.scripted import FunctionModel, ScriptedModel
from agent.observers import Metrics, Observer
from agent.ui.view import View


class Recorder:
    """Keeps each episode's question and events."""

    def __init__(self) -> None:
        self.episodes: list[tuple[str, list[Event]]] = []

    def episode(self, question: str, model: Any) -> Any:
        events: list[Event] = []
        self.episodes.append((question, events))
        return events.append


def test_each_event_reaches_each_observer_once_in_order() -> None:
    first, second, metrics = Recorder(), Recorder(), Metrics()
    agent = Agent(ScriptedModel([call("add", a=2, b=3), "5", "7"]), [add], examples=(), observers=[first, metrics])
    agent.observers.append(second)
    streamed = list(agent.stream("2 + 3?"))
    assert first.episodes == second.episodes == [("2 + 3?", streamed)]
    agent.copy().run("3 + 4?")  # a copy shares the observers ...
    assert [q for q, _ in first.episodes] == ["2 + 3?", "3 + 4?"]
    assert (metrics.episodes, metrics.answered, metrics.usage.tool_calls, metrics.usage.steps) == (2, 2, 1, 3)
    twin = agent.copy()
    twin.observers.append(Recorder())  # ... but attaching one to the copy leaves the agent alone
    assert len(agent.observers) == 3 and isinstance(second, Observer)


def test_a_resumed_episode_is_observed_too() -> None:
    from helpers import remove

    seen = Recorder()
    agent = Agent(ScriptedModel([call("remove", path="x"), "gone"]), [remove], examples=(), observers=[seen])
    assert agent.run("Remove x.").stop_reason == "approval"
    assert agent.resume(approve=True).answer == "gone"
    (q1, paused), (q2, resumed) = seen.episodes
    assert q1 == q2 == "Remove x."
    assert isinstance(paused[-2], ApprovalRequested) and isinstance(paused[-1], Final)
    assert [e.call.output for e in resumed if isinstance(e, Observation)] == ["removed x"]


def test_a_view_can_be_an_observer() -> None:
    out = io.StringIO()
    agent = Agent(ScriptedModel([call("add", a=2, b=3), "It is 5."]), [add], examples=())
    agent.observers.append(View(out, color=False))
    agent.run("2 + 3?")
    shown = out.getvalue()
    assert '→ add {"a": 2, "b": 3}' in shown and "← 5  (" in shown and "It is 5." in shown


def test_a_function_model_answers_from_the_prompt() -> None:
    def respond(prompt: str) -> str:
        if "<tool_response>\n5\n</tool_response>" in prompt:
            return "The sum is 5."
        return call("add", a=2, b=3)

    model = FunctionModel(respond)
    result = Agent(model, [add], examples=()).run("2 + 3?")
    assert result.answer == "The sum is 5." and [c.output for c in result.tool_calls] == ["5"]
    assert model.grammars[0] is not None  # an instruct model's first step is a call, under the grammar


def test_a_thinking_function_model_continues_its_turn_after_a_grammar_switch() -> None:
    turn = "I add.\n</think>\n\n" + call("add", a=1, b=1)
    model = FunctionModel(lambda prompt: "It is 2." if "<tool_response>" in prompt else turn, thinking=True)
    result = Agent(model, [add], examples=()).run("1 + 1?")
    assert result.answer == "It is 2." and result.reasoning.startswith("I add.")
    assert [c.arguments for c in result.tool_calls] == [{"a": 1, "b": 1}]
    assert len(model.prompts) == 3  # thought, then the call body under the grammar, then the answer


def test_a_run_tells_the_observers_what_a_stream_yields_and_neither_leaves_the_callers_thread() -> None:
    """`run` has no reader of its events and `stream` relays each to its reader on the same thread:
    the tools run on the caller's thread either way, and the observers get every event, in order."""
    import threading

    threads: list[int] = []

    def where(a: int, b: int) -> int:
        """Add two whole numbers, noting the thread.

        Args:
            a: The first number.
            b: The second number.
        """
        threads.append(threading.get_ident())
        return a + b

    streamed, ran = Recorder(), Recorder()
    script = [call("where", a=2, b=3), call("where", a=5, b=1), "6"]
    events = list(Agent(ScriptedModel(script), [where], examples=(), observers=[streamed]).stream("2 + 3 + 1?"))
    result = Agent(ScriptedModel(script), [where], examples=(), observers=[ran]).run("2 + 3 + 1?")
    assert threads == [threading.get_ident()] * 4
    assert result.answer == "6" and len(result.tool_calls) == 2
    [(_, seen)], [(_, told)] = streamed.episodes, ran.episodes
    assert seen == events

    def shape(event: Event) -> tuple[str, Any, Any]:  # timings differ
        return type(event).__name__, getattr(getattr(event, "call", None), "output", None), getattr(event, "name", None)

    assert [shape(e) for e in told] == [shape(e) for e in seen]
