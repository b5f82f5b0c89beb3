"""The throughput side of `qwq-agent bench`: agent episodes run at once on one model.

`parallel_throughput` runs N threads of real agent episodes (built-in calculator) on a model that
decodes several sequences together (`LlamaCppModel(sequences=N)`, see `agent.models.batching`)
and counts the tokens generated inside a fixed window, for each N; `bench` reports 4 ÷ 1 as
`parallel_throughput_ratio` and the whole curve. This module measures; it changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

from agent.models.protocol import Generation, Piece

PARALLEL_QUESTIONS = (
    "What is 17 * 23?",
    "What is (125 + 375) * 8?",
    "A train travels 60 km in 45 minutes. What is its speed in km/h?",
    "What is 2^10 - 24?",
    "Tom has 3 boxes of 12 apples and gives away 7 apples. How many are left?",
    "What is the sum of the first 20 positive integers?",
    "What is 15% of 240?",
    "What is 1001 - 357 - 128?",
)
"""Questions the concurrent episodes cycle through (each thread starts at a different one)."""


class Counted:
    """A `Model` around a real one that timestamps every generated token (for `parallel_throughput`)."""

    def __init__(self, model: Any) -> None:
        self.inner = model
        self.name, self.thinking, self.context_size = model.name, model.thinking, model.context_size
        self.sampling, self.chat_template, self.seed = model.sampling, model.chat_template, model.seed
        self.parallel = model.parallel
        self.times: list[float] = []

    def tokenize(self, text: str, special: bool) -> list[int]:
        return list(self.inner.tokenize(text, special))

    def reseed(self, seed: int) -> None:
        self.inner.reseed(seed)

    def describe(self) -> dict[str, Any]:
        return dict(self.inner.describe())

    def preamble(self, tokens: Sequence[int]) -> None:
        self.inner.preamble(tokens)

    def cancel(self) -> None:
        self.inner.cancel()

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        generation = self.inner.generate(prompt, max_tokens=max_tokens, grammar=grammar)
        generation.pieces = self._stamped(generation.pieces)
        return generation

    def _stamped(self, pieces: Iterator[Piece]) -> Iterator[Piece]:
        with closing(pieces):  # type: ignore[type-var]
            for piece in pieces:
                self.times.append(time.perf_counter())  # list.append is atomic: threads share it
                yield piece


def parallel_throughput(model: Any, levels: Sequence[int], seconds: float, ramp: float = 2.0) -> dict[int, float]:
    """Generated tokens/s of N agent episodes run at once on `model`, for each N of `levels`.

    N threads each run episodes back to back (built-in calculator, a short budget); after a
    `ramp` of seconds only the tokens generated in the next `seconds` count, and the episodes
    still running then are cancelled. The preamble is in the cache from a first episode, as in
    any batch after its first item. `model` must serve several episodes at once (`sequences` >=
    max(levels)).
    """
    import threading

    from agent.api import Agent
    from tools import default_tools

    counted = Counted(model)
    agent = Agent(counted, default_tools(["calculator"]), max_steps=4, max_tokens=160)
    agent.run(PARALLEL_QUESTIONS[0])
    rates: dict[int, float] = {}
    for n in levels:
        stop = threading.Event()

        def work(first: int, twin: Any, stop: threading.Event = stop) -> None:
            for i in range(first, first + 10_000):
                if stop.is_set():
                    return
                twin.run(PARALLEL_QUESTIONS[i % len(PARALLEL_QUESTIONS)])

        threads = [threading.Thread(target=work, args=(i, agent.copy()), daemon=True) for i in range(n)]
        for thread in threads:
            thread.start()
        time.sleep(ramp)
        start = time.perf_counter()
        time.sleep(seconds)
        end = time.perf_counter()
        stop.set()
        model.cancel()
        for thread in threads:
            thread.join()
        rates[n] = sum(1 for t in counted.times if start <= t < end) / (end - start)
        counted.times.clear()
    return rates
