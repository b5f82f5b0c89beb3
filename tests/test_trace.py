"""Traces: written by a real (scripted) run, read back, replayed, and drawn as a page a browser loads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import add

from agent import Agent
from agent.core.records import (
    AnswerText,
    ApprovalRequested,
    Event,
    Final,
    Observation,
    ReasoningText,
    Result,
    StepFinished,
    StepUsage,
    ToolCall,
    ToolCallStarted,
    Usage,
)
from agent.models.scripted import ScriptedModel
from agent.ui.trace import CallSpan, Step, TraceError, Tracer, load, to_event, to_record
from agent.ui.trace_html import html

QUESTION = "What is 2 + 3, and <b>why</b>?"


def scripted_agent() -> Agent:
    body = json.dumps({"name": "add", "arguments": {"a": 2, "b": 3}})
    turns = [
        f"I will add them.\n</think>\n\n<tool_call>\n{body}\n</tool_call>",
        "The tool says 5.\n</think>\n\nIt is 5.",
    ]
    return Agent(ScriptedModel(turns, thinking=True), [add], examples=())


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.jsonl"
    tracer = Tracer(path, command="solve")
    agent = tracer.attach(scripted_agent())
    assert agent.run(QUESTION).answer == "It is 5."
    tracer.close()
    return path


def test_every_event_is_written_with_times_and_tokens(trace_file: Path) -> None:
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    header, question = lines[0], lines[1]
    assert header["type"] == "trace" and header["version"] == 1 and header["command"] == "solve"
    assert header["model"]["name"] == "scripted" and header["model"]["context_size"] == 100_000
    assert question == {"type": "question", "episode": 1, "t": question["t"], "text": QUESTION}
    kinds = [line["type"] for line in lines[2:]]
    assert kinds[-1] == "final" and kinds.count("step") == 2
    assert kinds.index("tool_call") < kinds.index("observation") < len(kinds) - 1
    assert (
        "".join(line["text"] for line in lines if line["type"] == "reasoning") == "I will add them.\nThe tool says 5.\n"
    )
    times = [line["t"] for line in lines[1:]]
    assert times == sorted(times)  # stamped in order, on one clock
    steps = [line for line in lines if line["type"] == "step"]
    for step in steps:
        assert {"prompt_evaluated", "prompt_reused", "generated", "seconds", "tokens_per_second"} <= step.keys()
        assert step["context_used"] == step["prompt_evaluated"] + step["prompt_reused"] + step["generated"]
    assert steps[1]["prompt_reused"] > 0
    final = lines[-1]["result"]
    assert final["answer"] == "It is 5." and final["tool_calls"][0]["output"] == "5"


def test_records_round_trip_to_events() -> None:
    call = ToolCall("add", {"a": 2, "b": 3}, "5", False, 0.5)
    events: list[Event] = [
        ReasoningText("hm"),
        AnswerText("5"),
        ToolCallStarted("add", {"a": 2, "b": 3}),
        Observation(call),
        StepFinished(1, 10, 2, 3),
        ApprovalRequested("python", {"code": "1"}, "code"),
        Final(Result("5", "hm", (call,), Usage(steps=1, per_step=(StepUsage(3, 10, 2, 3, 1),)), "answer")),
        Final(Result(None, "", (), Usage(), "approval", approval=ApprovalRequested("python", {"code": "1"}, "code"))),
    ]
    for event in events:
        assert to_event(json.loads(json.dumps(to_record(event)))) == event


def test_load_groups_steps_and_calls(trace_file: Path) -> None:
    trace = load(trace_file)
    (episode,) = trace.episodes
    assert episode.question == QUESTION
    kinds = [type(item).__name__ for item in episode.items]
    assert kinds == ["Step", "CallSpan", "Step"]
    first, span, second = episode.items
    assert isinstance(first, Step) and isinstance(span, CallSpan) and isinstance(second, Step)
    assert first.reasoning == "I will add them.\n" and second.answer == "It is 5."
    assert (span.call.name, span.call.output, span.call.error) == ("add", "5", False)
    assert episode.result is not None and episode.result["answer"] == "It is 5."


def test_a_torn_last_line_is_dropped_and_a_bad_line_is_named(trace_file: Path, tmp_path: Path) -> None:
    lines = trace_file.read_text().splitlines()
    torn = tmp_path / "torn.jsonl"
    torn.write_text("\n".join(lines[:-1]) + '\n{"type": "fin')
    episode = load(torn).episodes[0]
    assert episode.result is None and len(episode.items) == 3  # everything before the tear
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], lines[1], "not json", *lines[2:]]))
    with pytest.raises(TraceError, match=r"broken\.jsonl, line 3"):
        load(broken)
    stray = tmp_path / "stray.jsonl"
    stray.write_text(lines[0] + "\n" + lines[3])
    with pytest.raises(TraceError, match="line 2: an event before its episode's question"):
        load(stray)


def test_cli_trace_option_show_and_html(
    trace_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent import cli

    monkeypatch.setattr("agent.cli.options.make_agent", lambda args: _traced(args))
    written = tmp_path / "cli.jsonl"
    assert cli.main(["solve", QUESTION, "--trace", str(written)]) == 0
    capsys.readouterr()
    assert [e.question for e in load(written).episodes] == [QUESTION]

    assert cli.main(["trace", "show", str(written)]) == 0
    err = capsys.readouterr().err
    assert f"? {QUESTION}" in err and '→ add {"a": 2, "b": 3}' in err and "← 5  (" in err
    assert "I will add them." in err and "It is 5." in err and "[step 2: prompt" in err

    page = tmp_path / "page.html"
    assert cli.main(["trace", "html", str(written), "-o", str(page)]) == 0
    assert page.is_file() and "wrote" in capsys.readouterr().err
    assert cli.main(["trace", "show", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read trace" in capsys.readouterr().err


def _traced(args: object) -> Agent:
    from agent.ui.trace import Tracer

    return Tracer(args.trace, command="solve").attach(scripted_agent())  # type: ignore[attr-defined]


def test_html_is_self_contained_and_escaped(trace_file: Path) -> None:
    page = html(load(trace_file))
    assert "What is 2 + 3, and &lt;b&gt;why&lt;/b&gt;?" in page and "<b>why</b>" not in page
    assert "default-src 'none'" in page  # the page may load nothing, even by mistake
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"@import|url\(", page)
    assert page.count("<details") == 2 and "<summary>Reasoning (4 words)</summary>" in page
    assert "→ add" in page and "It is 5." in page and 'class="timeline"' in page


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make setup` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (make setup installs it)")
    return found


def in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """Load `page` in headless Chromium: the DOM once its scripts ran, and its console lines."""
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Script errors, refused loads (the page's policy) and console output all log as CONSOLE lines.
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_html_loads_in_headless_chromium_without_errors(trace_file: Path, tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    page.write_text(html(load(trace_file)))
    dom, console = in_chromium(page, tmp_path / "profile")
    assert console == []
    assert 'data-ready="yes"' in dom  # the inline script ran to its end
    assert "What is 2 + 3, and &lt;b&gt;why&lt;/b&gt;?" in dom
    assert "→ add" in dom and "It is 5." in dom


# Markup that runs script if a page draws it unescaped: it would retitle the page, mark the body
# or write into the document.
HOSTILE = (
    "</pre></title><script>document.title='PWNED';document.body.dataset.pwned='script'</script>"
    "<img src=x onerror=\"document.body.dataset.pwned='img'\">"
    '" onmouseover="document.write(\'PWNED\')" x="<svg onload="document.title=\'PWNED\'"></svg>\ud800'
)


def title(dom: str) -> str:
    found = re.search("<title>(.*?)</title>", dom, re.S)
    assert found is not None
    return found.group(1)


def hostile_trace(path: Path) -> Path:
    """A trace whose every text field, and every argument and stats key, carries the markup."""
    h = HOSTILE
    records = [
        {"type": "trace", "version": 1, "started": h, "command": h, "model": {"name": h, "context_size": 8192, h: h}},
        {"type": "question", "episode": 1, "t": 0.0, "text": h},
        {"type": "reasoning", "episode": 1, "t": 0.1, "text": h},
        {"type": "answer", "episode": 1, "t": 0.2, "text": h},
        {"type": "step", "episode": 1, "t": 0.3, "step": 1, "prompt_evaluated": 1, "prompt_reused": 0, "generated": 1},
        {"type": "tool_call", "episode": 1, "t": 0.4, "name": h, "arguments": {h: h, "code": h}},
        {"type": "observation", "episode": 1, "t": 0.5, "name": h, "arguments": {h: h}, "output": h,
         "error": True, "seconds": 0.1},
        {"type": "approval", "episode": 1, "t": 0.6, "tool": h, "arguments": {h: h}, "reason": h},
        {"type": "final", "episode": 1, "t": 0.7, "result": {"answer": h, "reasoning": h, "stop_reason": h,
         "tool_calls": [{"name": h, "arguments": {h: h}, "output": h, "error": False, "seconds": 0.1}],
         "stats": {"steps": 1, h: h}}},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_text_from_a_trace_never_runs_in_its_page(tmp_path: Path) -> None:
    from agent import cli

    page = tmp_path / "hostile.html"
    assert cli.main(["trace", "html", str(hostile_trace(tmp_path / "hostile.jsonl")), "-o", str(page)]) == 0
    dom, _ = in_chromium(page, tmp_path / "profile")
    assert 'data-ready="yes"' in dom  # the page's own script ran ...
    assert title(dom).startswith("qwq-agent trace: ")  # ... and no other: the title is the page's
    assert "data-pwned" not in dom and dom.count("<script") == 1 and "<img" not in dom and "<svg" not in dom
    assert dom.count("&lt;script&gt;document.title='PWNED'") >= 8  # the markup is shown as text


def test_markup_slipped_into_the_page_cannot_run(trace_file: Path, tmp_path: Path) -> None:
    """Defence in depth: the page's policy runs its own script only, even if escaping ever failed."""
    page = tmp_path / "slipped.html"
    injected = "<script>document.title='PWNED'</script><img src=x onerror=\"document.title='PWNED'\">"
    page.write_text(html(load(trace_file)).replace("<footer>", injected + "<footer>"))
    dom, _ = in_chromium(page, tmp_path / "profile")
    assert 'data-ready="yes"' in dom and title(dom) == "qwq-agent trace: What is 2 + 3, and &lt;b&gt;why&lt;/b&gt;?"


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "question", "episode": "1\\"><script>document.title=1</script>", "t": 0, "text": "q"}',
        '{"type": "question", "episode": 1, "t": "soon", "text": "q"}',
        '{"type": "question", "episode": 1, "t": 0, "text": ["q"]}',
        '{"type": "question", "episode": true, "t": 0, "text": "q"}',
        '{"type": "question", "episode": 1, "t": NaN, "text": "q"}',
        '{"type": ["question"], "episode": 1, "t": 0, "text": "q"}',
        '{"type": "trace", "model": {"name": "m", "context_size": "8k"}}',
    ],
    ids=["episode-markup", "t-text", "text-list", "episode-bool", "t-nan", "type-list", "header-context"],
)
def test_a_trace_with_a_field_of_the_wrong_type_is_refused(
    trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    from agent import cli

    bad = tmp_path / "bad.jsonl"
    lines = trace_file.read_text().splitlines()
    bad.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    page = tmp_path / "bad.html"
    assert cli.main(["trace", "html", str(bad), "-o", str(page)]) == 2
    assert not page.exists()  # no page was written
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.jsonl, line 2:" in err and "Traceback" not in err
    assert "<script>" not in err  # the message names the field, not its value
    assert cli.main(["trace", "show", str(bad)]) == 2


def test_an_observation_or_result_of_the_wrong_shape_is_refused(trace_file: Path, tmp_path: Path) -> None:
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    for kind, change in [
        ("observation", {"seconds": "0.1"}),
        ("observation", {"error": "no"}),
        ("step", {"generated": 1.5}),
        ("final", {"result": {"answer": 5}}),
        ("final", {"result": {"answer": "5", "stats": {"prompt_evaluated": "many"}}}),
        ("final", {"result": {"answer": "5", "tool_calls": [{"name": "add"}]}}),
    ]:
        edited = [(line | change) if line["type"] == kind else line for line in lines]
        path = tmp_path / "edited.jsonl"
        path.write_text("\n".join(json.dumps(line) for line in edited))
        with pytest.raises(TraceError, match=r"line [0-9]+: "):
            load(path)


def test_agents_of_one_command_share_the_trace_file(tmp_path: Path) -> None:
    from agent.ui.trace import tracer_for

    path = tmp_path / "shared.jsonl"
    first, second = tracer_for(path, command="eval"), tracer_for(str(path), command="eval")
    assert first is second
    for _ in range(2):
        first.attach(scripted_agent()).run(QUESTION)
    first.close()
    trace = load(path)
    assert [e.number for e in trace.episodes] == [1, 2] and trace.header["command"] == "eval"
    assert tracer_for(path) is not first  # a closed tracer is not handed out again


# The page as a reader sees it: newlines, long questions, the controls, the figures, a narrow window.


def traced(tmp_path: Path, question: str, turns: list[str], thinking: bool = True) -> tuple[str, Result]:
    path = tmp_path / "page.jsonl"
    tracer = Tracer(path, command="solve")
    agent = tracer.attach(Agent(ScriptedModel(turns, thinking=thinking), [add], examples=()))
    result = agent.run(question)
    tracer.close()
    return html(load(path)), result


def test_the_answer_keeps_its_newlines_and_appears_once(tmp_path: Path) -> None:
    page, result = traced(tmp_path, "List two.", ["Two lines.\n</think>\n\nfirst line\nsecond line"])
    assert result.answer == "first line\nsecond line"
    assert page.count("first line\nsecond line") == 1  # in the answer box, not in its step as well
    assert re.search(r"\.text \{[^}]*white-space:pre-wrap", page)  # and drawn with its line breaks
    final = page[page.index('<div class="final">') :]
    assert "first line\nsecond line" in final


def test_a_long_question_is_clipped_with_a_toggle(tmp_path: Path) -> None:
    question = "Consider this. " * 60
    page, _ = traced(tmp_path, question, ["Fine.\n</think>\n\n4"])
    heading = re.search(r'<h2 class="question"[^>]*>(.*?)</h2>', page, re.S)
    assert heading is not None and len(heading.group(1)) <= 300 and heading.group(1).endswith("…")
    assert f"<summary>Whole question ({len(question):,} characters)</summary><pre>{question}</pre>" in page
    short, _ = traced(tmp_path, "Short?", ["Fine.\n</think>\n\n4"])
    assert '<h2 class="question">Short?</h2>' in short and "Whole question" not in short


def test_expand_all_reasoning_only_when_there_is_reasoning(tmp_path: Path) -> None:
    reasoned, _ = traced(tmp_path, "q", ["Thinking hard.\n</think>\n\n4"])
    assert "Expand all reasoning" in reasoned
    plain, _ = traced(tmp_path, "q", ["4"], thinking=False)
    assert "Expand all reasoning" not in plain and "<details" not in plain


def test_the_reuse_figure_is_a_share_never_a_sum_beyond_the_context(trace_file: Path) -> None:
    trace = load(trace_file)
    stats = (trace.episodes[0].result or {})["stats"]
    share = round(100 * stats["prompt_reused"] / (stats["prompt_reused"] + stats["prompt_evaluated"]))
    page = html(trace)
    assert f"<span>reused <b>{share}% of prompt tokens</b></span>" in page
    assert f"reused <b>{stats['prompt_reused']:,}</b>" not in page


def narrow_layout(page: str, tmp_path: Path) -> dict[str, str]:
    """Load `page` at 420 px with a measuring script in place of its policy; what it measured."""
    measure = """
    <script>
    window.addEventListener('load', function () {
      var out = document.body.dataset, width = document.documentElement.clientWidth;
      out.overflow = String(document.documentElement.scrollWidth > width);
      var torn = [];
      document.querySelectorAll('.legend span').forEach(function (s) {
        var swatch = s.querySelector('i').getBoundingClientRect(), box = s.getBoundingClientRect();
        var split = s.getClientRects().length !== 1 || swatch.top < box.top || swatch.bottom > box.bottom;
        if (split) torn.push(s.textContent);
      });
      out.torn = torn.join('|');
      out.keys = String(document.querySelectorAll('.legend span').length);
      var stamp = document.querySelector('header p span:last-child');
      var line = parseFloat(getComputedStyle(stamp).lineHeight);
      out.stamplines = String(Math.round(stamp.getBoundingClientRect().height / line));
      out.legendlines = String(new Set(Array.from(document.querySelectorAll('.legend span')).map(function (s) {
        return Math.round(s.getBoundingClientRect().top); })).size);
      out.measured = 'yes';
    });
    </script>"""
    unlocked = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace(
        "</body>", measure + "</body>"
    )
    path = tmp_path / "narrow.html"
    path.write_text(unlocked)
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--window-size=420,900",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body is not None
    return dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(1)))


def test_legend_and_timestamp_wrap_cleanly_at_420_px(trace_file: Path, tmp_path: Path) -> None:
    layout = narrow_layout(html(load(trace_file)), tmp_path)
    assert layout.get("measured") == "yes", layout
    assert layout["overflow"] == "false"  # nothing sticks out sideways
    assert layout["keys"] == "6" and layout["torn"] == ""  # no swatch parted from its label
    assert layout["stamplines"] == "1"  # the timestamp is not broken across lines
    assert int(layout["legendlines"]) >= 2  # the legend did wrap: the test measured a narrow page
