"""Per-step figures of an episode, derived from when its events arrive: `StepTimer`, `StepFigures`.

A step runs from the end of the previous step (or its last tool call) to its `StepFinished`; its
prefill ends when its first text arrives. The live view and the tracer both time steps so.
This module only counts; it prints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.core import records


@dataclass(frozen=True)
class StepFigures:
    """What one reasoning step cost, measured from the events' arrival times."""

    step: int
    """1 for the first step of the episode."""
    prompt_evaluated: int
    """Prompt tokens llama.cpp had to evaluate."""
    prompt_reused: int
    """Prompt tokens taken from the KV cache."""
    generated: int
    """Tokens the model generated in this step."""
    seconds: float
    """Wall time of the step, prefill included, tools excluded."""
    prefill_seconds: float | None
    """Time until the first generated text arrived (prompt evaluation); None when no text came
    (a step that only wrote a constrained tool call streams no text)."""
    tokens_per_second: float | None
    """Generation speed: generated tokens over the time after the first text; None when no text
    streamed (then prompt evaluation and generation cannot be told apart)."""
    context_used: int
    """Tokens in the context at the end of the step (prompt plus generation)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


class StepTimer:
    """Turns event arrival times into per-step figures.

    A step runs from the end of the previous step (or its last tool call) to its `StepFinished`;
    its prefill ends when its first text arrives. Times are seconds on any one clock.
    """

    def __init__(self, began: float) -> None:
        """Start timing at `began` (the episode's start)."""
        self.step_began = began
        self.first_text: float | None = None
        self.pieces = 0
        self.context_used = 0

    def text(self, at: float) -> None:
        """A piece of reasoning or answer text arrived at `at`."""
        if self.first_text is None:
            self.first_text = at
        self.pieces += 1

    def live_rate(self, now: float) -> float:
        """Text pieces per second so far in this step: a live estimate of tokens per second."""
        if self.first_text is None or now - self.first_text < 0.2:
            return 0.0
        return self.pieces / (now - self.first_text)

    def resume(self, at: float) -> None:
        """A tool call ended at `at`: the next step starts here (tool time is not model time)."""
        self.step_began, self.first_text, self.pieces = at, None, 0

    def finish(self, event: records.StepFinished, at: float) -> StepFigures:
        """The step ended at `at`; returns its figures and starts the next step."""
        seconds = max(at - self.step_began, 0.0)
        prefill = None if self.first_text is None else round(max(self.first_text - self.step_began, 0.0), 4)
        generating = at - self.first_text if self.first_text is not None else 0.0
        rate = round(event.generated / generating, 2) if generating > 0 and event.generated else None
        self.context_used = event.prompt_evaluated + event.prompt_reused + event.generated
        figures = StepFigures(
            event.step,
            event.prompt_evaluated,
            event.prompt_reused,
            event.generated,
            round(seconds, 4),
            prefill,
            rate,
            self.context_used,
        )
        self.resume(at)
        return figures
