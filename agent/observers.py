"""Observers: what watches an agent's episodes without taking part, attached as `Agent(observers=[...])`.

At the start of every episode (a question, a resumed episode) the agent asks each observer for a
sink, `observer.episode(question, model)`, and then hands every event of that episode to it,
from one place (`Agent.stream` and `Agent.resume_stream`), before yielding it to its caller.
The tracer (`agent.ui.trace.Tracer`), the terminal view (`agent.ui.view.View`) and `Metrics`
below are observers. Episodes of copies of an agent (a batch's workers) run in several threads
at once: an observer shared by them must be thread-safe.

This module defines the protocol and the one observer that only counts; it prints nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from agent.core.records import Event, Final, Usage

Sink = Callable[[Event], None]
"""Takes one event of one episode."""


@runtime_checkable
class Observer(Protocol):
    """Anything that wants every event of every episode."""

    def episode(self, question: str, model: Any) -> Sink:
        """An episode on `model` begins with `question`; returns where its events go."""
        ...


class Metrics:
    """Counts episodes and adds up their usage, across threads: a running total for a workload."""

    def __init__(self) -> None:
        self.episodes = 0
        """Episodes that ended (a `Final` event)."""
        self.answered = 0
        """Of those, with an answer."""
        self.usage = Usage()
        """Their usage, added up."""
        self._lock = threading.Lock()

    def episode(self, question: str, model: Any) -> Sink:
        """Count this episode when it ends."""

        def sink(event: Event) -> None:
            if isinstance(event, Final):
                with self._lock:
                    self.episodes += 1
                    self.answered += event.result.answer is not None
                    self.usage += event.result.usage

        return sink
