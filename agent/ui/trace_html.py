"""A trace as one self-contained HTML page: `html(trace)`.

Inline style and script only, under a Content-Security-Policy that forbids loading anything and
runs no script but the page's own (by its hash), so the page works from a file, offline and as an
attachment, and text from the trace, always escaped, can never run as script: per episode its figures, a timeline of
prompt evaluation, reasoning, answering and tool time, each step with its figures and its
reasoning folded, each call with its arguments and output, and the answer.

This module only writes markup; reading traces is `agent.ui.trace`.
"""

from __future__ import annotations

import base64
import hashlib
import html as markup
import json
import re
from typing import Any

from agent.ui.trace import CallSpan, Episode, Step, Trace

_STYLE = """
:root { --bg:#fbfaf7; --ink:#1d1b26; --dim:#6b6878; --think:#7c5cc4; --answer:#1f8a4c; --tool:#d07a12;
  --err:#c8352b; --prefill:#b9b4c8; --card:#fff; --line:#e4e1ea; }
@media (prefers-color-scheme: dark) { :root { --bg:#15141b; --ink:#e9e6f2; --dim:#9a96a8; --card:#1e1c27;
  --line:#34313f; --prefill:#4a4658; } }
* { box-sizing: border-box; }
body { margin:0 auto; max-width:1000px; padding:24px; background:var(--bg); color:var(--ink);
  font:15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
header h1 { font-size:20px; margin:0 0 4px; } header p { margin:0; color:var(--dim); }
header p span, .legend span { display:inline-block; max-width:100%; overflow-wrap:anywhere; }
header p span + span::before { content:"· "; }
.controls { margin:12px 0 4px; } button { font:inherit; font-size:13px; padding:3px 10px; cursor:pointer;
  border:1px solid var(--line); background:var(--card); color:var(--ink); border-radius:6px; }
section.episode { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 20px;
  margin:18px 0; }
h2.question { font-size:18px; margin:0 0 8px; white-space:pre-wrap; overflow-wrap:anywhere; }
h2.question::before { content:"? "; color:var(--think); }
details.question { margin:-4px 0 8px; } details.question summary { cursor:pointer; color:var(--dim); font-size:13px; }
.figures { display:flex; flex-wrap:wrap; gap:6px 18px; color:var(--dim); font-size:13px; margin-bottom:10px; }
.figures b { color:var(--ink); font-weight:600; }
.timeline { position:relative; height:22px; background:var(--bg); border:1px solid var(--line);
  border-radius:5px; overflow:hidden; margin:8px 0 4px; }
.timeline span { position:absolute; top:0; bottom:0; min-width:2px; }
.seg-prefill { background:var(--prefill); }
.seg-model { background:repeating-linear-gradient(135deg, var(--prefill) 0 6px, var(--think) 6px 9px); }
.seg-reasoning { background:var(--think); }
.seg-answer { background:var(--answer); } .seg-tool { background:var(--tool); } .seg-error { background:var(--err); }
.legend { display:flex; flex-wrap:wrap; gap:2px 14px; font-size:12px; color:var(--dim); margin-bottom:12px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; }
ol.items { list-style:none; padding:0; margin:0; }
ol.items > li { border-left:3px solid var(--line); padding:6px 0 6px 14px; margin:6px 0; }
li.step { border-left-color:var(--think) !important; } li.call { border-left-color:var(--tool) !important; }
li.call.error { border-left-color:var(--err) !important; }
.head { font-weight:600; } .head small { font-weight:400; color:var(--dim); margin-left:8px; }
details.reasoning summary { cursor:pointer; color:var(--think); font-size:13px; }
pre { white-space:pre-wrap; word-break:break-word; margin:6px 0; font:13px/1.45 ui-monospace, monospace;
  background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
details.reasoning pre { color:var(--dim); font-style:italic; }
.text { margin:6px 0; white-space:pre-wrap; overflow-wrap:anywhere; }
.final { border:2px solid var(--answer); border-radius:8px; padding:10px 14px; margin-top:14px; }
.final .label { color:var(--answer); font-weight:700; font-size:13px; text-transform:uppercase; }
.final.none { border-color:var(--err); } .final.none .label { color:var(--err); }
footer { color:var(--dim); font-size:12px; margin-top:24px; }
"""

# Inline and tiny: the page must work from a file, offline, under a policy that loads nothing.
_SCRIPT = """
(function () {
  function all(open) { document.querySelectorAll('details.reasoning').forEach(function (d) { d.open = open; }); }
  var expand = document.getElementById('expand'), collapse = document.getElementById('collapse');
  if (expand) { expand.addEventListener('click', function () { all(true); }); }
  if (collapse) { collapse.addEventListener('click', function () { all(false); }); }
  document.body.setAttribute('data-ready', 'yes');
})();
"""


# Only the page's own script may run: even markup that slipped past escaping could run none.
_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()}'"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _e(text: Any) -> str:
    """Text from the trace as HTML text or attribute value (a lone surrogate, which no page can
    encode, becomes U+FFFD)."""
    return _SURROGATE.sub("\ufffd", markup.escape(str(text), quote=True))


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
            kind = "error" if item.call.error else "tool"
            segments.append((kind, item.started, stop, item.call.name or "bad call"))
    spans = []
    for kind, start, stop, title in segments:
        left = 100 * (start - episode.began) / span
        width = 100 * max(stop - start, 0) / span
        label = f"{title}: {stop - start:.2f} s"
        spans.append(
            f'<span class="seg-{kind}" style="left:{left:.3f}%;width:{width:.3f}%" title="{_e(label)}"></span>'
        )
    return f'<div class="timeline" role="img" aria-label="timeline">{"".join(spans)}</div>'


QUESTION_SHOWN = 280
"""Characters of a question shown in its heading; the rest opens under a toggle."""

LEGEND = (
    ("prefill", "prompt"),
    ("model", "prompt + call"),
    ("reasoning", "reasoning"),
    ("answer", "answer"),
    ("tool", "tool"),
    ("error", "failed call"),
)


def _question_html(question: str) -> str:
    """The question as the episode's heading; a long one clipped, the whole of it under a toggle."""
    lines = question.splitlines() or [""]
    if len(question) <= QUESTION_SHOWN and len(lines) <= 4:
        return f'<h2 class="question">{_e(question)}</h2>'
    shown = "\n".join(lines[:4])[:QUESTION_SHOWN].rstrip() + "…"
    return (
        f'<h2 class="question" title="the question, clipped">{_e(shown)}</h2>'
        f'<details class="question"><summary>Whole question ({len(question):,} characters)</summary>'
        f"<pre>{_e(question)}</pre></details>"
    )


def _reuse(stats: dict[str, Any]) -> str:
    """The share of the prompt tokens read that came from the cache: the episode's reuse figure.

    Every step re-reads its whole prompt, so a sum of reused tokens over the steps can exceed
    the context many times over; a share cannot.
    """
    evaluated, reused = stats.get("prompt_evaluated", 0), stats.get("prompt_reused", 0)
    return "–" if not evaluated + reused else f"{100 * reused / (evaluated + reused):.0f}% of prompt tokens"


def _step_html(step: Step, final_answer: str | None = None) -> str:
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
    if step.answer.strip() and step.answer.strip() != (final_answer or "").strip():  # the answer: once, below
        parts.append(f'<div class="text">{_e(step.answer.strip())}</div>')
    return f'<li class="step">{"".join(parts)}</li>'


def _call_html(span: CallSpan) -> str:
    call = span.call
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
        ("tool calls", stats.get("tool_calls", sum(isinstance(i, CallSpan) for i in episode.items))),
        ("prompt evaluated", f"{stats.get('prompt_evaluated', 0):,}"),
        ("reused", _reuse(stats)),
        ("generated", f"{stats.get('generated_tokens', 0):,}"),
        ("thinking", f"{stats.get('thinking_tokens', 0):,}"),
        ("time", _seconds(stats.get("time_total_s"))),
        ("stop", result.get("stop_reason", "unfinished")),
    ]
    answer = result.get("answer")
    items = "".join(_step_html(i, answer) if isinstance(i, Step) else _call_html(i) for i in episode.items)
    if episode.result is None:
        final = '<div class="final none"><div class="label">No result</div>the run ended before the episode did</div>'
    elif answer is None:
        final = (
            f'<div class="final none"><div class="label">No answer</div>{_e(result.get("stop_reason"))} budget</div>'
        )
    else:
        final = f'<div class="final"><div class="label">Answer</div><div class="text">{_e(answer)}</div></div>'
    return (
        f'<section class="episode" id="episode-{_e(episode.number)}">'
        f"{_question_html(episode.question)}"
        f'<div class="figures">{"".join(f"<span>{_e(k)} <b>{_e(v)}</b></span>" for k, v in figures)}</div>'
        f"{_timeline(episode)}"
        f'<div class="legend">{"".join(f"<span><i class=seg-{k}></i>{t}</span>" for k, t in LEGEND)}</div>'
        f'<ol class="items">{items}</ol>{final}</section>'
    )


def html(trace: Trace, *, title: str | None = None) -> str:
    """One self-contained HTML page for a trace: no remote scripts, styles, fonts or images."""
    header = trace.header
    model = header.get("model") or {}
    about = " ".join(  # each figure a unit: a line breaks between them, not inside a timestamp
        f"<span>{_e(x)}</span>"
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
    reasoned = any(isinstance(i, Step) and i.reasoning.strip() for e in trace.episodes for i in e.items)
    controls = (
        '<div class="controls"><button id="expand" type="button">Expand all reasoning</button> '
        '<button id="collapse" type="button">Collapse all</button></div>'
        if reasoned
        else ""
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><header><h1>qwq-agent trace</h1><p>{about}</p>{controls}</header>\n"
        f"{body}\n<footer>Written by qwq-agent trace html; times are seconds from the start of the run.</footer>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
