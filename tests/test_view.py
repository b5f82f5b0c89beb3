"""The terminal view: plain text when piped or NO_COLOR, rich panels on a terminal, readable math."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from helpers import add

from agent import Agent
from agent.core.records import (
    AnswerText,
    Final,
    Observation,
    ReasoningText,
    Result,
    StepFinished,
    ToolCall,
    ToolCallStarted,
    Usage,
)
from agent.models.scripted import ScriptedModel
from agent.ui.mathtext import readable_math
from agent.ui.timing import StepTimer
from agent.ui.view import View, use_color

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")
CALL = ToolCall("calculator", {"expression": "37 * 89 + 12"}, "3305", seconds=0.25)
RESULT = Result("The answer is 3305.", "Let me compute.", (CALL,), Usage(steps=2, tool_calls=1), "answer")
EVENTS: list[tuple[float, object]] = [
    (0.5, ReasoningText("I should use the calculator.\nLet me compute.")),
    (1.0, StepFinished(1, 800, 0, 40)),
    (1.0, ToolCallStarted("calculator", {"expression": "37 * 89 + 12"})),
    (1.25, Observation(CALL)),
    (2.0, AnswerText("The answer is 3305.")),
    (2.5, StepFinished(2, 27, 840, 9)),
    (2.5, Final(RESULT)),
]


class Terminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def play(view: View) -> Result | None:
    view.begin(at=0.0)
    result = None
    for at, event in EVENTS:
        result = view.show(event, at=at) or result  # type: ignore[arg-type]
    view.close()
    return result


def test_plain_view_prints_lines_without_escape_codes() -> None:
    out = io.StringIO()
    result = play(View(out, context_size=4096))
    text = out.getvalue()
    assert result is RESULT
    assert not ESCAPE.search(text)
    lines = text.splitlines()
    assert lines[0] == "I should use the calculator."
    assert '→ calculator {"expression": "37 * 89 + 12"}' in lines
    assert "← 3305  (0.25s)" in lines
    assert "The answer is 3305." in lines
    # Step figures from the arrival times: step 2 ran from the observation (1.25) to 2.5, text from 2.0.
    assert "[step 2: prompt 27 evaluated + 840 reused in 0.75 s · 9 generated at 18 tok/s" in text
    assert "context 876/4,096 (21%) · 1.25 s]" in text


def test_plain_view_hides_reasoning_and_answer_when_asked() -> None:
    out = io.StringIO()
    play(View(out, show_reasoning=False, show_answer=False))
    assert "calculator." not in out.getvalue() and "The answer is" not in out.getvalue()
    assert "→ calculator" in out.getvalue()


def test_no_color_on_a_terminal_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = Terminal()
    assert not use_color(out)
    play(View(out))
    assert not ESCAPE.search(out.getvalue()) and "← 3305" in out.getvalue()
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_color(Terminal()) and not use_color(io.StringIO())


def test_color_view_panels_status_and_answer() -> None:
    out = Terminal()
    play(View(out, color=True, width=100, context_size=4096))
    text = ESCAPE.sub("", out.getvalue())
    assert "\x1b[" in out.getvalue()  # it is coloured
    assert "│ I should use the calculator." in text  # reasoning behind its gutter
    assert "╭─ → calculator" in text and '{"expression": "37 * 89 + 12"}' in text
    assert "← calculator · 0.25 s" in text
    assert "step 1 · prompt 800 evaluated + 0 reused" in text and "context 840/4,096" in text
    assert "╭─ Answer" in text and "The answer is 3305." in text and "2 steps · 1 tool call" in text


def test_color_view_hidden_and_collapsed_reasoning() -> None:
    hidden = Terminal()
    play(View(hidden, color=True, width=100, show_reasoning=False))
    assert "calculator." not in ESCAPE.sub("", hidden.getvalue())
    collapsed = Terminal()
    play(View(collapsed, color=True, width=100, collapse_reasoning=True))
    text = ESCAPE.sub("", collapsed.getvalue())
    assert "│ I should use" not in text.replace("\r", "\n").split("step 1")[-1]  # not kept after the step
    assert "▸ reasoning collapsed (44 characters)" in text


def test_step_timer_separates_prefill_generation_and_tools() -> None:
    timer = StepTimer(10.0)
    timer.text(12.0)  # two seconds of prefill
    timer.text(12.5)
    first = timer.finish(StepFinished(1, 100, 0, 20), 14.0)
    assert (first.seconds, first.prefill_seconds, first.tokens_per_second, first.context_used) == (4.0, 2.0, 10.0, 120)
    timer.resume(20.0)  # a tool ran from 14 to 20: not the model's time
    second = timer.finish(StepFinished(2, 5, 120, 4), 21.0)
    assert (second.seconds, second.prefill_seconds, second.tokens_per_second) == (1.0, None, None)


@pytest.mark.parametrize(
    ("latex", "plain"),
    [
        (r"$\boxed{3305}$", "3305"),
        (r"\frac{1}{2}", "1/2"),
        (r"\dfrac{a+b}{2}", "(a+b)/2"),
        (r"x = \sqrt{2} \cdot \pi", "x = √2 · π"),
        (r"\( x^{2} + y^2 \leq 10 \)", " x² + y² ≤ 10 "),
        (r"The answer is \boxed{\frac{\sqrt{3}}{2}}.", "The answer is √3/2."),
        (r"\text{apples}: 3 \times 4", "apples: 3 × 4"),
        ("no math here {braces} stay", "no math here {braces} stay"),
    ],
)
def test_readable_math(latex: str, plain: str) -> None:
    assert readable_math(latex) == plain


def test_cli_piped_output_is_plain(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from agent import cli

    body = json.dumps({"name": "add", "arguments": {"a": 2, "b": 3}})
    model = ScriptedModel([f"Adding.\n</think>\n\n<tool_call>\n{body}\n</tool_call>", "Done.\n</think>\n\nIt is 5."])
    model.thinking = True
    monkeypatch.setattr("agent.cli.options.make_agent", lambda args: Agent(model, [add], examples=()))
    assert cli.main(["solve", "2 + 3?"]) == 0
    out, err = capsys.readouterr()
    assert out == "It is 5.\n"  # stdout: the answer alone
    assert not ESCAPE.search(err)
    assert '→ add {"a": 2, "b": 3}' in err and "← 5  (" in err and "Adding." in err
    assert "[step 1: prompt" in err and "[step 2: prompt" in err


def test_chat_commands_multiline_save_and_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from agent import cli
    from agent.ui.trace import load

    model = ScriptedModel(["First answer.", "Second answer."])
    monkeypatch.setattr("agent.cli.options.make_agent", lambda args: Agent(model, [], examples=()))
    script = [
        "/help",
        "/model",
        f"/trace {tmp_path / 'chat.jsonl'}",
        "Add two \\",
        "and three.",
        "/trace off",
        '"""',
        "line one",
        "line two",
        '"""',
        f"/save {tmp_path / 'chat.md'}",
        f"/save {tmp_path / 'chat.json'}",
        "/frobnicate",
        "/quit",
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(script) + "\n"))
    assert cli.main(["chat"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["First answer.", "Second answer."]
    assert "/save FILE" in err and "name: scripted" in err and "unknown command /frobnicate" in err
    assert "(saved 2 turns to" in err and "(tracing stopped)" in err
    saved = json.loads((tmp_path / "chat.json").read_text())
    assert [t["question"] for t in saved] == ["Add two \nand three.", "line one\nline two"]
    assert "## line one\nline two" in (tmp_path / "chat.md").read_text()
    traced = load(tmp_path / "chat.jsonl")
    assert [e.question for e in traced.episodes] == ["Add two \nand three."]  # traced until /trace off


def test_an_approval_request_stops_the_live_line() -> None:
    from agent.core.records import ApprovalRequested

    view = View(Terminal(), color=True, width=100)
    view.begin(at=0.0)
    view.show(ReasoningText("Let me run some code.\n"), at=0.1)
    assert view._live is not None  # the status line is up while the model works
    view.show(ApprovalRequested("python", {"code": "1"}, "code"), at=0.2)
    assert view._live is None  # released: the approval question is asked on this terminal next
    view.show(Observation(ToolCall("python", {"code": "1"}, "1")), at=0.3)
    assert view._live is not None
    view.close()


def test_one_commands_defaults_do_not_leak_into_another() -> None:
    from agent.cli import build_parser

    # argparse shares parent options between commands; eval/run/batch hide reasoning by default,
    # which must not hide it for solve and chat.
    for argv in (["solve", "x"], ["chat"]):
        args = build_parser().parse_args(argv)
        assert args.hide_reasoning is False and args.tools is None and args.trace is None
