"""A generator of what a producer emits through a callback as it runs, on the reader's thread.

`Agent.stream` needs each event of a running graph as it happens. LangGraph's "custom" stream
gets them there by running every node in a worker thread and waking the caller's thread for each
event; with llama.cpp's threads on every core, those wake-ups cost the generation 15-25 % of its
speed (45-56 tokens/s against 60-68 on the caller's thread, side by side, 2 cores). Here the
producer runs in a greenlet on the same thread instead, and each item is a switch to the reader:
no thread, queue or lock.

What it does not do: run the producer concurrently with anything. The producer is paused while
the reader handles an item, so a reader must not wait on the producer's locks (start another
generation on the same in-process model inside its loop, say).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import greenlet

T = TypeVar("T")


def relayed(produce: Callable[[Callable[[T], None]], Iterable[T]]) -> Iterator[T]:
    """What `produce(emit)` passes to `emit` or yields, one item at a time, as it does.

    The producer's exceptions reach the reader where it waits for the next item. A reader that
    stops early (closes the generator, or drops it) unwinds the producer from its waiting `emit`:
    its `finally` blocks and context managers run, and what it emits meanwhile is dropped.
    """
    stopped = False

    def emit(item: T) -> None:
        if not stopped:
            producer.parent.switch(item)

    def run() -> None:
        for item in produce(emit):
            emit(item)

    producer = greenlet.greenlet(run)
    # The reader's context variables (LangGraph's config, say), which a new greenlet starts without.
    producer.gr_context = contextvars.copy_context()
    try:
        while True:
            producer.parent = greenlet.getcurrent()  # whoever reads next is who the producer returns to
            item = producer.switch()
            if producer.dead:
                return
            yield item
    finally:
        stopped = True
        if not producer.dead:
            producer.throw()  # GreenletExit, raised in the producer where it waits
