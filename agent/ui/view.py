"""The terminal view: how an episode's events look to a person watching it.

`View.show(event)` renders one event as it arrives. On a colour terminal (rich) the model's
reasoning streams dimmed behind a gutter, or collapses to a short live tail and a one-line
summary (`collapse_reasoning`), or is hidden (`show_reasoning=False`); tool calls and their
observations get panels of their own with the tool's duration; a live status line at the bottom
shows the step, what the model is doing, tokens per second, the context used and the time; the
answer ends in a highlighted panel with LaTeX-ish math made readable. When the output is piped,
`NO_COLOR` is set or `TERM=dumb`, the same events print as plain lines (`→ tool {...}`,
`← output  (0.30s)`) with no escape codes. Text from the model, tools, traces and sessions is
shown through `agent.ui.terminal.printable`, so nothing in it can act on the terminal.

A `View` is also an observer (`Agent(observers=[view])`): it then shows every episode itself.
Per-step figures come from `agent.ui.timing`, readable math from `agent.ui.mathtext`. This module
only prints: it never runs a model, and rich is imported only when a colour view is made, so
importing it stays cheap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from agent.core import records
from agent.ui.mathtext import readable_math
from agent.ui.terminal import printable, printable_json
from agent.ui.timing import StepFigures, StepTimer

if TYPE_CHECKING:
    from agent.core.records import Event, Result


def use_color(out: IO[str]) -> bool:
    """Whether `out` gets colour: a terminal, `NO_COLOR` unset (https://no-color.org), `TERM` not dumb."""
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class View:
    """Renders an episode's events for a person, on a colour terminal or as plain text."""

    def __init__(
        self,
        out: IO[str],
        *,
        show_reasoning: bool = True,
        collapse_reasoning: bool = False,
        show_answer: bool = True,
        context_size: int | None = None,
        color: bool | None = None,
        width: int | None = None,
    ) -> None:
        """Make a view.

        Args:
            out: Where events go (stderr for the CLI: stdout is kept for the answer).
            show_reasoning: False hides the model's reasoning altogether.
            collapse_reasoning: On a colour terminal, show only a live tail of the reasoning and
                then a one-line summary per step.
            show_answer: Whether streamed answer text is shown here (the CLI prints the answer
                on stdout itself when stdout is a terminal).
            context_size: The model's context, for the "context used" figure.
            color: Force the colour view on or off; by default it follows `use_color(out)`.
            width: Terminal width for the colour view; by default the terminal's.
        """
        self.out = out
        self.show_reasoning = show_reasoning
        self.collapse_reasoning = collapse_reasoning
        self.show_answer = show_answer
        self.context_size = context_size
        self.color = use_color(out) if color is None else color
        self.fresh_line = True
        self.timer = StepTimer(time.monotonic())
        self.steps: list[StepFigures] = []
        self.began = time.monotonic()
        self._live: Any = None
        self._spinner: Any = None
        self._partial = ""  # reasoning text not yet ending in a newline (colour view)
        self._tail: list[str] = []  # recent reasoning lines while collapsed
        self._step_reasoning = 0  # characters of reasoning in the current step
        self._answer = ""
        self._activity = "starting"
        self._clock = time.monotonic
        if self.color:
            try:
                from rich.console import Console
            except ImportError:  # rich is a dependency; without it the view still works, plainly
                self.color = False
            else:
                self.console = Console(file=out, width=width, highlight=False, soft_wrap=False)

    # -- the episode -------------------------------------------------------------------------

    def begin(self, question: str | None = None, at: float | None = None) -> None:
        """An episode starts (optionally print its question, as a replayed trace does)."""
        now = self._clock() if at is None else at
        self.timer = StepTimer(now)
        self.began = now
        self.steps = []
        self._answer, self._partial, self._tail, self._step_reasoning = "", "", [], 0
        self._activity = "reading the question"
        if question is not None:
            if self.color:
                from rich.text import Text

                self.console.print(Text("? ", style="bold magenta") + Text(printable(question), style="bold"))
            else:
                self.line(f"? {question}")

    def episode(self, question: str, model: Any) -> Callable[[Event], None]:
        """The observer protocol (`Agent(observers=[view])`): show every event of the episode."""
        self.context_size = self.context_size or model.context_size
        self.begin()
        return lambda event: None if self.show(event) is None else self.close()

    def show(self, event: Event, at: float | None = None) -> Result | None:
        """Render one event (`at`: when it happened, for replays); returns the `Result` at the end."""
        now = self._clock() if at is None else at
        if isinstance(event, records.ReasoningText | records.AnswerText):
            self.timer.text(now)
        if self.color:
            return self._show_rich(event, now)
        return self._show_plain(event, now)

    def close(self) -> None:
        """Stop the live status line (after an interruption, say); safe to call twice."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def answer(self, result: Result, out: IO[str]) -> None:
        """Print the final answer on `out`: a highlighted panel on a colour terminal, else plain."""
        if result.answer is None:
            return
        if use_color(out) and self.color:
            from rich.console import Console

            self._answer_panel(Console(file=out, highlight=False), result)
        else:
            print(printable(result.answer), file=out, flush=True)

    # -- plain text --------------------------------------------------------------------------

    def _show_plain(self, event: Event, now: float) -> Result | None:
        match event:
            case records.ReasoningText(text) if self.show_reasoning:
                self.write(text)
            case records.AnswerText(text) if self.show_answer:
                self.write(text)
            case records.ToolCallStarted(name, arguments):
                self.line(f"→ {name} {printable_json(arguments)}")
            case records.Observation(call):
                self.timer.resume(now)
                mark = "✗" if call.error else "←"
                self.line(f"{mark} {call.output}  ({call.seconds:.2f}s)")
            case records.StepFinished():
                figures = self._finish_step(event, now)
                self.line(f"[{self._figures_text(figures)}]")
            case records.Final(result):
                return result
        return None

    def write(self, text: str) -> None:
        """Write text as it streams (plain view), escaped: nothing in it acts on the terminal."""
        if text:
            self.out.write(printable(text))
            self.out.flush()
            self.fresh_line = text.endswith("\n")

    def line(self, text: str) -> None:
        """Write `text` on a line of its own (plain view)."""
        self.write(("" if self.fresh_line else "\n") + text + "\n")

    # -- colour ------------------------------------------------------------------------------

    def _show_rich(self, event: Event, now: float) -> Result | None:
        from rich.panel import Panel
        from rich.text import Text

        if self._live is None and not isinstance(event, records.Final | records.ApprovalRequested):
            self._start_live()
        match event:
            case records.PromptRead(evaluated, reused, saved_cache):
                self._activity = _reading(evaluated, reused, saved_cache)
            case records.ReasoningText(text):
                self._activity = "thinking"
                self._step_reasoning += len(text)
                if self.show_reasoning:
                    self._reason(printable(text))
            case records.AnswerText(text):
                self._activity = "answering"
                self._answer += text
            case records.ToolCallStarted(name, arguments):
                self._flush_reasoning()
                name = printable(name)
                self._activity = f"running {name}"
                self.console.print(
                    Panel(
                        _arguments(arguments),
                        title=Text(f"→ {name}"),  # Text, not a str: rich reads markup ([link=...]) in a str
                        title_align="left",
                        border_style="cyan",
                        expand=False,
                    )
                )
            case records.Observation(call):
                self.timer.resume(now)
                self._activity = "reading the result"
                style = "red" if call.error else "green"
                title = f"{'✗' if call.error else '←'} {printable(call.name) or 'bad call'} · {call.seconds:.2f} s"
                body = Text(_clip_lines(printable(call.output.rstrip()), 20), style="red" if call.error else "")
                self.console.print(Panel(body, title=Text(title), title_align="left", border_style=style, expand=False))
            case records.StepFinished():
                self._flush_reasoning()
                if self.show_reasoning and self.collapse_reasoning and self._step_reasoning:
                    self.console.print(
                        Text(f"▸ reasoning collapsed ({self._step_reasoning:,} characters)", style="dim")
                    )
                self._step_reasoning, self._tail = 0, []
                figures = self._finish_step(event, now)
                line = "── " + fitted(self._figure_parts(figures), self.console.width - 3, drop=(2,))
                self.console.print(Text(line, style="dim"), no_wrap=True, overflow="ellipsis")
                self._activity = "next step"
            case records.ApprovalRequested():
                self._flush_reasoning()
                self.close()  # a question follows on this terminal: the live line must not redraw over it
            case records.Final(result):
                self.close()
                if self.show_answer and result.answer is not None:
                    self._answer_panel(self.console, result)
                return result
        return None

    def _start_live(self) -> None:
        from rich.live import Live

        # rich's thread redraws from `_status` itself, so the spinner and timer move between events.
        self._live = Live(console=self.console, refresh_per_second=8, transient=True, get_renderable=self._status)
        self._live.start()

    def _reason(self, text: str) -> None:
        """Stream reasoning: whole lines print above the status line, the unfinished one inside it."""
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        width = max(self.console.width - 4, 20)
        while len(self._partial) > width:  # wrap long paragraphs ourselves: the live area stays small
            cut = self._partial.rfind(" ", 0, width)
            cut = cut if cut > 0 else width
            lines.append(self._partial[:cut])
            self._partial = self._partial[cut:].lstrip(" ")
        for line in lines:
            self._reasoning_line(line)

    def _reasoning_line(self, line: str) -> None:
        from rich.text import Text

        if self.collapse_reasoning:
            self._tail = [*self._tail, line][-4:]
        else:
            self.console.print(Text("│ ", style="magenta dim") + Text(line, style="dim italic"))

    def _flush_reasoning(self) -> None:
        if self._partial.strip():
            self._reasoning_line(self._partial)
        self._partial = ""

    def _status(self) -> Any:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        if self._spinner is None:  # one spinner for the episode: a new one per redraw never moves
            self._spinner = Spinner("dots", style="cyan")
        parts: list[Any] = []
        if self.show_reasoning:
            shown = [*self._tail, self._partial] if self.collapse_reasoning else [self._partial]
            for line in shown:
                if line.strip():
                    parts.append(Text("│ ", style="magenta dim") + Text(line, style="dim italic"))
        if self._answer.strip():
            parts.append(Text(printable(readable_math(self._answer.strip())), style="bold"))
        now = self._clock()
        step = len(self.steps) + 1
        figures = [f"step {step}", self._activity]
        rate = self.timer.live_rate(now)
        if rate:
            figures.append(f"{rate:.0f} tok/s")
        if self.timer.context_used:
            figures.append(self._context_text(self.timer.context_used))
        figures.append(f"{now - self.began:.1f} s")
        self._spinner.update(text=Text(fitted(figures, self.console.width - 3), style="cyan"))
        parts.append(self._spinner)
        return Group(*parts)

    def _answer_panel(self, console: Any, result: Result) -> None:
        from rich.panel import Panel
        from rich.text import Text

        used = result.usage
        subtitle = (
            f"{_count(used.steps, 'step')} · {_count(used.tool_calls, 'tool call')} · "
            f"{_count(used.generated_tokens, 'token')} · {used.time_total_s:.1f} s"
        )
        body = Text(printable(readable_math(result.answer or "")), style="bold")
        # Wide enough for the figures underneath, never wider than the terminal.
        width = min(console.width, max(body.cell_len + 4, len(subtitle) + 6))
        panel = Panel(body, title="Answer", title_align="left", subtitle=subtitle, subtitle_align="right")
        panel.border_style, panel.width = "bold green", width
        console.print(panel)

    # -- shared ------------------------------------------------------------------------------

    def _finish_step(self, event: records.StepFinished, now: float) -> StepFigures:
        figures = self.timer.finish(event, now)
        self.steps.append(figures)
        return figures

    def _context_text(self, used: int) -> str:
        if self.context_size:
            return f"context {used:,}/{self.context_size:,} ({100 * used / self.context_size:.0f}%)"
        return f"context {used:,}"

    def _figure_parts(self, f: StepFigures) -> list[str]:
        """A step's figures for its line on a colour terminal, the step first and its time last."""
        prefill = "" if f.prefill_seconds is None else f" in {f.prefill_seconds:.2f} s"
        rate = "" if f.tokens_per_second is None else f" at {f.tokens_per_second:.0f} tok/s"
        return [
            f"step {f.step}",
            f"prompt {f.prompt_evaluated:,} evaluated + {f.prompt_reused:,} reused{prefill}",
            f"{f.generated:,} tokens{rate}",
            self._context_text(f.context_used),
            f"{f.seconds:.1f} s",
        ]

    def _figures_text(self, f: StepFigures) -> str:
        prefill = "" if f.prefill_seconds is None else f" in {f.prefill_seconds:.2f} s"
        rate = "" if f.tokens_per_second is None else f" at {f.tokens_per_second:.0f} tok/s"
        return (
            f"step {f.step}: prompt {f.prompt_evaluated:,} evaluated + {f.prompt_reused:,} reused{prefill}"
            f" · {f.generated:,} generated{rate} · {self._context_text(f.context_used)} · {f.seconds:.2f} s"
        )


def fitted(parts: list[str], width: int, separator: str = " · ", *, drop: tuple[int, ...] = ()) -> str:
    """`parts` joined, leaving out middle ones until the line fits `width`: those `drop` lists
    (by index) first, then the nearest to the end. The first part and the last (the step, its
    time) always stay."""
    order = [*drop, *range(len(parts) - 2, 0, -1)]
    left = set(range(len(parts)))
    for index in order:
        if len(separator.join(parts[i] for i in sorted(left))) <= width:
            break
        left.discard(index)
    return separator.join(parts[i] for i in sorted(left))


def _reading(evaluated: int, reused: int, saved_cache: bool | None) -> str:
    """What the status line says while the model reads a prompt."""
    cache = ""
    if saved_cache:
        cache = f" ({reused:,} from the saved prompt cache)"
    elif saved_cache is False and reused == 0:
        cache = " (no saved prompt cache)"
    return f"reading the prompt: {evaluated:,} tokens…{cache}"


def _arguments(arguments: dict[str, Any]) -> Any:
    """A tool call's arguments: code as highlighted Python, anything else as compact JSON."""
    from rich.syntax import Syntax
    from rich.text import Text

    code = arguments.get("code")
    if isinstance(code, str) and len(arguments) <= 2:
        return Syntax(printable(code), "python", theme="ansi_dark", background_color="default")
    return Text(printable_json(arguments))


def _count(n: int, noun: str) -> str:
    """`1 step`, `2 steps`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _clip_lines(text: str, limit: int) -> str:
    """At most `limit` lines of `text` (the full output is in the result and the trace)."""
    lines = text.splitlines() or [""]
    if len(lines) <= limit:
        return text
    return "\n".join([*lines[:limit], f"… {len(lines) - limit} more lines"])
