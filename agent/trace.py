"""Traces: every event of a run written to a JSONL file, replayed in the terminal, drawn as HTML.

`Tracer(path).attach(agent)` makes every episode of `agent` (its `run`, `stream` and chats) write
one JSON line per event: a header line, then per episode its question, reasoning and answer
chunks, tool calls, observations, step figures (tokens, prefill and generation time, tokens per
second, context used) and the final `Result`, each stamped with `t`, seconds since the trace
began, and the episode's number (batches interleave episodes). Lines are flushed as they are
written, so a killed run leaves a readable trace.

`load` reads a trace back (errors name the line), `replay` shows it through a `View`, and `html`
renders one self-contained page: inline style and script only, a Content-Security-Policy that
forbids loading anything, a timeline per episode, collapsible reasoning, per-step figures.

This module does not run models or tools, and does not decide what is shown live (`agent.view`).
"""

from __future__ import annotations

import html as markup
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from agent import records
from agent.view import StepTimer

if TYPE_CHECKING:
    from agent.view import View

VERSION = 1
"""The trace format's version, in the header line."""


class TraceError(ValueError):
    """A trace file could not be read; the message names the line."""


def to_record(event: records.Event) -> dict[str, Any]:
    """The JSON fields of one event (without `t` and `episode`)."""
    match event:
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
        result = dict(record["result"])
        result["tool_calls"] = tuple(records.ToolCall(**c) for c in result.get("tool_calls", ()))
        if result.get("approval"):
            result["approval"] = records.ApprovalRequested(**result["approval"])
        known = {f.name for f in dataclass_fields(records.Result)}  # a newer trace may carry more
        return records.Final(records.Result(**{k: v for k, v in result.items() if k in known}))
    return None


class Tracer:
    """Writes the events of every episode of an agent to a JSONL file."""

    def __init__(self, path: str | os.PathLike[str], *, command: str | None = None) -> None:
        """Open (truncate) `path`; `command` is noted in the header (e.g. "solve")."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("w", encoding="utf-8", buffering=1)  # line-buffered
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self._episodes = 0
        self._command = command
        self._header_written = False

    def attach(self, agent: Any) -> Any:
        """Trace every episode `agent` runs from now on (its `stream`, hence `run` and chats); returns it."""
        model = getattr(agent, "model", None)
        describe = getattr(model, "describe", None)
        info = describe() if callable(describe) else {"name": getattr(model, "name", None)}
        info["context_size"] = getattr(model, "context_size", None)
        self.header(model=info)
        agent.stream = self.wrap(agent.stream, context_size=info["context_size"])
        return agent

    def header(self, **fields: Any) -> None:
        """Write the header line (once): format version, start time, command, and `fields`."""
        if not self._header_written:
            started = datetime.now(UTC).isoformat(timespec="seconds")
            self._write({"type": "trace", "version": VERSION, "started": started, "command": self._command, **fields})
            self._header_written = True

    def wrap(
        self, stream: Callable[..., Iterator[records.Event]], *, context_size: int | None = None
    ) -> Callable[..., Iterator[records.Event]]:
        """A `stream(question, **options)` that writes each event before passing it on."""

        def traced(question: str, **options: Any) -> Iterator[records.Event]:
            with self._lock:
                self._episodes += 1
                episode = self._episodes
            began = self.now()
            self._write({"type": "question", "episode": episode, "t": began, "text": question})
            timer = StepTimer(began)
            for event in stream(question, **options):
                self.record(event, episode, timer, context_size)
                yield event

        traced.__wrapped__ = stream  # type: ignore[attr-defined]  # so a chat can stop tracing
        return traced

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

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def _write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False, default=str)
        with self._lock:
            self._file.write(text + "\n")


_OPEN: dict[Path, Tracer] = {}
_OPEN_LOCK = threading.Lock()


def tracer_for(path: str | os.PathLike[str], *, command: str | None = None) -> Tracer:
    """The process's one `Tracer` for `path`: agents made for one command (an evaluation's
    configurations, say) share the file instead of each truncating it."""
    key = Path(path).expanduser().resolve()
    with _OPEN_LOCK:
        if key not in _OPEN or _OPEN[key]._file.closed:
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
class Call:
    """One tool call as read back from a trace."""

    name: str
    """The tool's name ("" for a call that could not be read)."""
    arguments: dict[str, Any]
    """The arguments the model passed."""
    started: float
    """When the call started (trace seconds)."""
    output: str = ""
    """The observation the model was shown."""
    error: bool = False
    """True when the call failed."""
    seconds: float = 0.0
    """Time the tool took."""
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
    items: list[Step | Call] = field(default_factory=list)
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
    """Read a trace; a line that is not JSON, or a record out of place, raises `TraceError`."""
    header: dict[str, Any] = {}
    episodes: dict[int, Episode] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "type" not in record:
                raise ValueError("not a trace record")
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
        episode.items.append(Call(record["name"], record["arguments"], at))
    elif kind == "observation":
        call = next((c for c in reversed(episode.items) if isinstance(c, Call) and c.ended is None), None)
        if call is None or call.name != record["name"]:  # a bad call is observed without being started
            call = Call(record["name"], record["arguments"], at)
            episode.items.append(call)
        call.output, call.error, call.seconds, call.ended = record["output"], record["error"], record["seconds"], at
    elif kind == "final":
        episode.result, episode.ended = record["result"], at
    elif kind != "approval":
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


# -- HTML ------------------------------------------------------------------------------------

_STYLE = """
:root { --bg:#fbfaf7; --ink:#1d1b26; --dim:#6b6878; --think:#7c5cc4; --answer:#1f8a4c; --tool:#d07a12;
  --err:#c8352b; --prefill:#b9b4c8; --card:#fff; --line:#e4e1ea; }
@media (prefers-color-scheme: dark) { :root { --bg:#15141b; --ink:#e9e6f2; --dim:#9a96a8; --card:#1e1c27;
  --line:#34313f; --prefill:#4a4658; } }
* { box-sizing: border-box; }
body { margin:0 auto; max-width:1000px; padding:24px; background:var(--bg); color:var(--ink);
  font:15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
header h1 { font-size:20px; margin:0 0 4px; } header p { margin:0; color:var(--dim); }
.controls { margin:12px 0 4px; } button { font:inherit; font-size:13px; padding:3px 10px; cursor:pointer;
  border:1px solid var(--line); background:var(--card); color:var(--ink); border-radius:6px; }
section.episode { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 20px;
  margin:18px 0; }
h2.question { font-size:18px; margin:0 0 8px; } h2.question::before { content:"? "; color:var(--think); }
.figures { display:flex; flex-wrap:wrap; gap:6px 18px; color:var(--dim); font-size:13px; margin-bottom:10px; }
.figures b { color:var(--ink); font-weight:600; }
.timeline { position:relative; height:22px; background:var(--bg); border:1px solid var(--line);
  border-radius:5px; overflow:hidden; margin:8px 0 4px; }
.timeline span { position:absolute; top:0; bottom:0; min-width:2px; }
.seg-prefill { background:var(--prefill); }
.seg-model { background:repeating-linear-gradient(135deg, var(--prefill) 0 6px, var(--think) 6px 9px); }
.seg-reasoning { background:var(--think); }
.seg-answer { background:var(--answer); } .seg-tool { background:var(--tool); } .seg-error { background:var(--err); }
.legend { font-size:12px; color:var(--dim); margin-bottom:12px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin:0 4px 0 12px; }
ol.items { list-style:none; padding:0; margin:0; }
ol.items > li { border-left:3px solid var(--line); padding:6px 0 6px 14px; margin:6px 0; }
li.step { border-left-color:var(--think) !important; } li.call { border-left-color:var(--tool) !important; }
li.call.error { border-left-color:var(--err) !important; }
.head { font-weight:600; } .head small { font-weight:400; color:var(--dim); margin-left:8px; }
details.reasoning summary { cursor:pointer; color:var(--think); font-size:13px; }
pre { white-space:pre-wrap; word-break:break-word; margin:6px 0; font:13px/1.45 ui-monospace, monospace;
  background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
details.reasoning pre { color:var(--dim); font-style:italic; }
.text { margin:6px 0; }
.final { border:2px solid var(--answer); border-radius:8px; padding:10px 14px; margin-top:14px; }
.final .label { color:var(--answer); font-weight:700; font-size:13px; text-transform:uppercase; }
.final.none { border-color:var(--err); } .final.none .label { color:var(--err); }
footer { color:var(--dim); font-size:12px; margin-top:24px; }
"""

# Inline and tiny: the page must work from a file, offline, under a policy that loads nothing.
_SCRIPT = """
(function () {
  function all(open) { document.querySelectorAll('details.reasoning').forEach(function (d) { d.open = open; }); }
  document.getElementById('expand').addEventListener('click', function () { all(true); });
  document.getElementById('collapse').addEventListener('click', function () { all(false); });
  document.body.setAttribute('data-ready', 'yes');
})();
"""


def _e(text: Any) -> str:
    return markup.escape(str(text), quote=True)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _timeline(episode: Episode) -> str:
    end = episode.ended if episode.ended is not None else max([episode.began, *(r["t"] for r in episode.records)])
    span = max(end - episode.began, 1e-6)
    segments: list[tuple[str, float, float, str]] = []
    for item in episode.items:
        if isinstance(item, Step):
            stop = item.ended if item.ended is not None else end
            kind = "answer" if item.answer.strip() and not item.reasoning.strip() else "reasoning"
            if item.first_text is not None:
                segments.append(("prefill", item.began, item.first_text, "prompt evaluation"))
                segments.append((kind, item.first_text, stop, f"step {item.figures.get('step', '?')}: generation"))
            else:  # nothing streamed (a constrained call): prompt and generation cannot be told apart
                title = f"step {item.figures.get('step', '?')}: prompt and generation"
                segments.append(("model", item.began, stop, title))
        else:
            stop = item.ended if item.ended is not None else end
            segments.append(("error" if item.error else "tool", item.started, stop, f"{item.name or 'bad call'}"))
    spans = []
    for kind, start, stop, title in segments:
        left = 100 * (start - episode.began) / span
        width = 100 * max(stop - start, 0) / span
        label = f"{title}: {stop - start:.2f} s"
        spans.append(
            f'<span class="seg-{kind}" style="left:{left:.3f}%;width:{width:.3f}%" title="{_e(label)}"></span>'
        )
    return f'<div class="timeline" role="img" aria-label="timeline">{"".join(spans)}</div>'


def _step_html(step: Step) -> str:
    f = step.figures
    figures = (
        f"{f.get('prompt_evaluated', 0):,} prompt tokens evaluated + {f.get('prompt_reused', 0):,} reused"
        + ("" if f.get("prefill_seconds") is None else f" in {f['prefill_seconds']:.2f} s")
        + f" · {f.get('generated', 0):,} generated"
        + ("" if f.get("tokens_per_second") is None else f" at {f['tokens_per_second']:.1f} tok/s")
        + f" · {f.get('seconds', 0):.2f} s"
    )
    if f.get("context_used"):
        size = f.get("context_size")
        figures += f" · context {f['context_used']:,}" + (f"/{size:,}" if size else "")
    parts = [f'<div class="head">Step {_e(f.get("step", "?"))}<small>{_e(figures)}</small></div>']
    if step.reasoning.strip():
        words = len(step.reasoning.split())
        parts.append(
            f'<details class="reasoning"><summary>Reasoning ({words:,} words)</summary>'
            f"<pre>{_e(step.reasoning.strip())}</pre></details>"
        )
    if step.answer.strip():
        parts.append(f'<div class="text">{_e(step.answer.strip())}</div>')
    return f'<li class="step">{"".join(parts)}</li>'


def _call_html(call: Call) -> str:
    arguments = json.dumps(call.arguments, ensure_ascii=False, indent=1 if len(str(call.arguments)) > 80 else None)
    code = call.arguments.get("code") if isinstance(call.arguments.get("code"), str) else None
    mark = "✗" if call.error else "→"
    return (
        f'<li class="call{" error" if call.error else ""}">'
        f'<div class="head">{mark} {_e(call.name or "bad call")}<small>{_seconds(call.seconds)}</small></div>'
        f"<pre class=arguments>{_e(code if code is not None else arguments)}</pre>"
        f"<pre class=output>{_e(call.output)}</pre></li>"
    )


def _episode_html(episode: Episode) -> str:
    result = episode.result or {}
    stats = result.get("stats") or {}
    figures = [
        ("steps", stats.get("steps", sum(isinstance(i, Step) for i in episode.items))),
        ("tool calls", stats.get("tool_calls", sum(isinstance(i, Call) for i in episode.items))),
        ("prompt evaluated", f"{stats.get('prompt_evaluated', 0):,}"),
        ("reused", f"{stats.get('prompt_reused', 0):,}"),
        ("generated", f"{stats.get('generated_tokens', 0):,}"),
        ("thinking", f"{stats.get('thinking_tokens', 0):,}"),
        ("time", _seconds(stats.get("time_total_s"))),
        ("stop", result.get("stop_reason", "unfinished")),
    ]
    items = "".join(_step_html(i) if isinstance(i, Step) else _call_html(i) for i in episode.items)
    answer = result.get("answer")
    if episode.result is None:
        final = '<div class="final none"><div class="label">No result</div>the run ended before the episode did</div>'
    elif answer is None:
        final = (
            f'<div class="final none"><div class="label">No answer</div>{_e(result.get("stop_reason"))} budget</div>'
        )
    else:
        final = f'<div class="final"><div class="label">Answer</div><div class="text">{_e(answer)}</div></div>'
    return (
        f'<section class="episode" id="episode-{episode.number}">'
        f'<h2 class="question">{_e(episode.question)}</h2>'
        f'<div class="figures">{"".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in figures)}</div>'
        f"{_timeline(episode)}"
        '<div class="legend"><i class="seg-prefill"></i>prompt<i class="seg-model"></i>prompt + call'
        '<i class="seg-reasoning"></i>reasoning'
        '<i class="seg-answer"></i>answer<i class="seg-tool"></i>tool<i class="seg-error"></i>failed call</div>'
        f'<ol class="items">{items}</ol>{final}</section>'
    )


def html(trace: Trace, *, title: str | None = None) -> str:
    """One self-contained HTML page for a trace: no remote scripts, styles, fonts or images."""
    header = trace.header
    model = header.get("model") or {}
    about = " · ".join(
        str(x)
        for x in (
            model.get("name"),
            model.get("context_size") and f"context {model['context_size']:,}",
            header.get("command") and f"qwq-agent {header['command']}",
            header.get("started"),
        )
        if x
    )
    first = trace.episodes[0].question if trace.episodes else "empty trace"
    title = title or f"qwq-agent trace: {first[:80]}"
    body = "".join(_episode_html(e) for e in trace.episodes) or "<p>This trace has no episodes.</p>"
    policy = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><header><h1>qwq-agent trace</h1><p>{_e(about)}</p>"
        '<div class="controls"><button id="expand" type="button">Expand all reasoning</button> '
        '<button id="collapse" type="button">Collapse all</button></div></header>\n'
        f"{body}\n<footer>Written by qwq-agent trace html; times are seconds from the start of the run.</footer>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
