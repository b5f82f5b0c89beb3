"""`Agent.stream` relays each event to its reader on the reader's own thread (agent/core/relay.py)."""

from __future__ import annotations

import contextvars
import threading

import pytest

from agent import Agent
from agent.core.records import AnswerText, ReasoningText
from agent.core.relay import relayed
from agent.models.llama_cpp import LlamaCppModel


def test_each_item_reaches_the_reader_before_the_producer_goes_on() -> None:
    done: list[int] = []

    def produce(emit):
        for n in range(3):
            emit(n)
            done.append(n)
        yield "last"

    seen = []
    for item in relayed(produce):
        seen.append((item, list(done)))
    assert seen == [(0, []), (1, [0]), (2, [0, 1]), ("last", [0, 1, 2])]


def test_a_reader_that_stops_unwinds_the_producer_and_its_errors_reach_the_reader() -> None:
    unwound = threading.Event()

    def produce(emit):
        try:
            for n in range(100):
                emit(n)
        finally:
            unwound.set()
            emit("dropped")  # emitted while closing: nobody reads it
        return ()

    items = relayed(produce)
    assert next(items) == 0 and not unwound.is_set()
    items.close()
    assert unwound.is_set()

    def broken(emit):
        emit(1)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(relayed(broken))


def test_the_producer_sees_the_readers_context_variables() -> None:
    var = contextvars.ContextVar("var", default="unset")
    var.set("reader's")
    assert list(relayed(lambda emit: [var.get()])) == ["reader's"]


def test_a_stream_left_after_its_first_token_frees_the_model_for_the_next_episode() -> None:
    """The suspended generation holds the model's lock: leaving the stream must release it, or the
    next episode on the same model waits forever (judged by that episode finishing, on a timer)."""
    agent = Agent(LlamaCppModel(seed=0, context_size=2048), [], examples=(), max_tokens=64)
    events = agent.stream("Count from 1 to 50.")
    assert any(isinstance(event, (ReasoningText, AnswerText)) for event in events)
    events.close()
    answers: list[str | None] = []
    worker = threading.Thread(target=lambda: answers.append(agent.run("Say hi.").answer), daemon=True)
    worker.start()
    worker.join(120)
    assert answers and answers[0], "the next episode never finished: the first one kept the model"
