"""Traces: every event of a run written to a JSONL file, replayed in the terminal, drawn as HTML.

`Tracer(path)` is an observer (`Agent(observers=[tracer])`, or `tracer.attach(agent)`): every
episode of the agent (its `run`, `stream`, `resume` and chats) writes one JSON line per event:
a header line, then per episode its question, reasoning and answer chunks, tool calls,
observations, step figures (tokens, prefill and generation time, tokens per second, context
used) and the final `Result`, each stamped with `t`, seconds since the trace began, and the
episode's number (batches interleave episodes). Lines are flushed as they are written, so a
killed run leaves a readable trace.

`load` reads a trace back, type-checking every field (`agent.ui.trace_schema`; errors name the
line and the field) and `replay` shows it through a `View`;
`agent.ui.trace_html` renders it as one self-contained page.

This module does not run models or tools, and does not decide what is shown live (`agent.ui.view`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core import records
from agent.core.files import OutputError, check_writable
from agent.ui.timing import StepTimer
from agent.ui.trace_schema import check

if TYPE_CHECKING:
    from agent.ui.view import View

VERSION = 1
"""The trace format's version, in the header line."""


class TraceError(ValueError):
    """A trace file could not be read; the message names the line."""


def to_record(event: records.Event) -> dict[str, Any]:
    """The JSON fields of one event (without `t` and `episode`)."""
    match event:
        case records.PromptRead(evaluated, reused, saved_cache):
            return {"type": "prompt", "evaluated": evaluated, "reused": reused, "saved_cache": saved_cache}
        case records.ReasoningText(text):
            return {"type": "reasoning", "text": text}
        case records.AnswerText(text):
            return {"type": "answer", "text": text}
        case records.ToolCallStarted(name, arguments):
            return {"type": "tool_call", "name": name, "arguments": arguments}
        case records.Observation(call):
            return {"type": "observation", **call.__dict__}
        case records.StepFinished(step, evaluated, reused, generated):
            return {
                "type": "step",
                "step": step,
                "prompt_evaluated": evaluated,
                "prompt_reused": reused,
                "generated": generated,
            }
        case records.ApprovalRequested(tool, arguments, reason):
            return {"type": "approval", "tool": tool, "arguments": arguments, "reason": reason}
        case records.Final(result):
            return {"type": "final", "result": result.to_dict()}
    raise TypeError(f"not an event: {event!r}")


def to_event(record: dict[str, Any]) -> records.Event | None:
    """The event a record was written from; None for records that are not events (header, question)."""
    kind = record.get("type")
    if kind == "prompt":
        return records.PromptRead(record["evaluated"], record["reused"], record.get("saved_cache"))
    if kind == "reasoning":
        return records.ReasoningText(record["text"])
    if kind == "answer":
        return records.AnswerText(record["text"])
    if kind == "tool_call":
        return records.ToolCallStarted(record["name"], record["arguments"])
    if kind == "observation":
        keys = ("name", "arguments", "output", "error", "seconds")
        return records.Observation(records.ToolCall(**{k: record[k] for k in keys}))
    if kind == "step":
        return records.StepFinished(
            record["step"], record["prompt_evaluated"], record["prompt_reused"], record["generated"]
        )
    if kind == "approval":
        return records.ApprovalRequested(record["tool"], record["arguments"], record["reason"])
    if kind == "final":
        return records.Final(records.Result.from_dict(record["result"]))
    return None


class Tracer:
    """Writes the events of every episode of an agent to a JSONL file."""

    def __init__(self, path: str | os.PathLike[str], *, command: str | None = None) -> None:
        """Open (truncate) `path`; `command` is noted in the header (e.g. "solve")."""
        self.path = check_writable(path)
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None
        self._written = 0  # bytes of whole lines on disk: a failed write is cut back to them
        self.failed: str | None = None
        """Why the trace stopped (a full disk, say); the episodes it traced go on untouched."""
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self._episodes = 0
        self._command = command
        self._header_written = False

    def attach(self, agent: Any) -> Any:
        """Trace every episode `agent` runs from now on (`agent.observers` gets this tracer); returns it."""
        self.header(model=_model_facts(agent.model))
        agent.observers.append(self)
        return agent

    def header(self, **fields: Any) -> None:
        """Write the header line (once): format version, start time, command, and `fields`."""
        with self._lock:
            if self._header_written:
                return
            self._header_written = True
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self._write({"type": "trace", "version": VERSION, "started": started, "command": self._command, **fields})

    def episode(self, question: str, model: Any) -> Callable[[records.Event], None]:
        """An episode begins (the observer protocol, `agent.observers`): its question line, then its events."""
        facts = _model_facts(model)
        self.header(model=facts)
        with self._lock:
            self._episodes += 1
            episode = self._episodes
        began = self.now()
        self._write({"type": "question", "episode": episode, "t": began, "text": question})
        timer = StepTimer(began)
        return lambda event: self.record(event, episode, timer, facts["context_size"])

    def record(self, event: records.Event, episode: int, timer: StepTimer, context_size: int | None = None) -> None:
        """Write one event of `episode`; steps get their figures from `timer`."""
        at = self.now()
        line = {**to_record(event), "episode": episode, "t": at}
        if isinstance(event, records.ReasoningText | records.AnswerText):
            timer.text(at)
        elif isinstance(event, records.Observation):
            timer.resume(at)
        elif isinstance(event, records.StepFinished):
            line |= timer.finish(event, at).to_dict() | {"context_size": context_size}
        self._write(line)

    def now(self) -> float:
        """Seconds since the trace began, rounded to the microsecond."""
        return round(time.monotonic() - self._began, 6)

    @property
    def closed(self) -> bool:
        """Whether the file is closed."""
        return self._fd is None

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _write(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, ensure_ascii=False, default=str) + "\n").encode()
        with self._lock:
            if self._fd is None or self.failed:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                self._written += len(data)
            except OSError as exc:
                # A trace is never worth the answer: warn once, keep the lines written whole.
                self.failed = exc.strerror or str(exc)
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._written)
                print(f"qwq-agent: warning: trace {self.path} stopped: {self.failed}", file=sys.stderr)


def _model_facts(model: Any) -> dict[str, Any]:
    """What the header says of the model: its `describe()` and its context size."""
    return {**model.describe(), "context_size": model.context_size}


_OPEN: dict[Path, Tracer] = {}
_OPEN_LOCK = threading.Lock()


def tracer_for(path: str | os.PathLike[str], *, command: str | None = None) -> Tracer:
    """The process's one `Tracer` for `path`: agents made for one command (an evaluation's
    configurations, say) share the file instead of each truncating it."""
    key = Path(path).expanduser().resolve()
    with _OPEN_LOCK:
        if key not in _OPEN or _OPEN[key].closed:
            _OPEN[key] = Tracer(key, command=command)
        return _OPEN[key]


# -- reading ---------------------------------------------------------------------------------


@dataclass
class Step:
    """One reasoning step as read back from a trace."""

    figures: dict[str, Any] = field(default_factory=dict)
    """The step record: tokens, seconds, tokens per second, context used."""
    reasoning: str = ""
    """The step's reasoning text, chunks joined."""
    answer: str = ""
    """The step's answer text, chunks joined."""
    began: float = 0.0
    """When the step began (trace seconds)."""
    first_text: float | None = None
    """When its first text arrived: the end of prompt evaluation; None if none streamed."""
    ended: float | None = None
    """When it finished; None if the trace ends inside it."""


@dataclass
class CallSpan:
    """One tool call as read back from a trace: the call, and when it ran."""

    call: records.ToolCall
    """The call; its output is "" until its observation is read ("" as name: a call that could
    not be read)."""
    started: float
    """When the call started (trace seconds)."""
    ended: float | None = None
    """When its observation was recorded; None if the trace ends before it."""


@dataclass
class Episode:
    """One question's episode: its steps and calls in order, and its result."""

    number: int
    """1 for the first episode in the trace."""
    question: str
    """The question asked."""
    began: float
    """When it began (trace seconds)."""
    items: list[Step | CallSpan] = field(default_factory=list)
    """Its steps and tool calls, in order."""
    result: dict[str, Any] | None = None
    """The final `Result` as a dict; None if the trace ends before it."""
    ended: float | None = None
    """When the result was recorded."""
    records: list[dict[str, Any]] = field(default_factory=list)
    """Its raw records, in order (for replays)."""


@dataclass
class Trace:
    """A whole trace file."""

    header: dict[str, Any]
    """The header record: version, start time, command, model."""
    episodes: list[Episode]
    """Its episodes, by number."""


def load(path: str | os.PathLike[str]) -> Trace:
    """Read a trace; a line that is not JSON, a field of the wrong type or a record out of place
    raises `TraceError`, naming the line."""
    header: dict[str, Any] = {}
    episodes: dict[int, Episode] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a qwq-agent trace (not UTF-8 text)") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            check(record)  # a trace is data from outside: every field is the type it is used as
            if record["type"] == "trace":
                header = record
                continue
            if record["type"] == "question":
                episodes[record["episode"]] = Episode(record["episode"], record["text"], record["t"])
                continue
            episode = episodes.get(record.get("episode"))  # type: ignore[arg-type]
            if episode is None:
                raise ValueError("an event before its episode's question")
            _take(episode, record)
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines) and isinstance(exc, json.JSONDecodeError):
                break  # the last line of a killed run may be torn: keep the rest
            raise TraceError(f"{path}, line {number}: {exc}") from None
    if not header and not episodes:
        raise TraceError(f"{path}: not a qwq-agent trace (no records)")
    return Trace(header, sorted(episodes.values(), key=lambda e: e.number))


def _take(episode: Episode, record: dict[str, Any]) -> None:
    """Add one record to its episode's steps and calls."""
    episode.records.append(record)
    kind, at = record["type"], record["t"]
    step = episode.items[-1] if episode.items and isinstance(episode.items[-1], Step) else None
    if step is not None and step.ended is not None:
        step = None
    if kind in ("reasoning", "answer"):
        if step is None:
            previous = episode.items[-1] if episode.items else None
            began = (previous.ended or at) if previous is not None else episode.began
            step = Step(began=began)
            episode.items.append(step)
        step.first_text = at if step.first_text is None else step.first_text
        if kind == "reasoning":
            step.reasoning += record["text"]
        else:
            step.answer += record["text"]
    elif kind == "step":
        if step is None:  # a step that wrote nothing
            previous = episode.items[-1] if episode.items else None
            step = Step(began=(previous.ended or at) if previous is not None else episode.began)
            episode.items.append(step)
        step.figures, step.ended = record, at
    elif kind == "tool_call":
        episode.items.append(CallSpan(records.ToolCall(record["name"], record["arguments"], ""), at))
    elif kind == "observation":
        span = next((c for c in reversed(episode.items) if isinstance(c, CallSpan) and c.ended is None), None)
        if span is None or span.call.name != record["name"]:  # a bad call is observed without being started
            span = CallSpan(records.ToolCall(record["name"], record["arguments"], ""), at)
            episode.items.append(span)
        observed = to_event(record)
        assert isinstance(observed, records.Observation)
        span.call, span.ended = observed.call, at
    elif kind == "final":
        episode.result, episode.ended = record["result"], at
    elif kind not in ("approval", "prompt"):  # a prompt record only times the wait, kept in `records`
        raise ValueError(f"unknown record type {kind!r}")


def replay(trace: Trace, view: View) -> None:
    """Show a trace through a view, as the run looked (without waiting between events)."""
    for episode in trace.episodes:
        view.begin(episode.question, at=episode.began)
        for record in episode.records:
            event = to_event(record)
            if event is not None:
                view.show(event, at=record["t"])
        view.close()
