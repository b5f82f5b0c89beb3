"""Bad command lines are refused in one line and a hint, before any model loads (exit 2)."""

from __future__ import annotations

import pytest

from agent.api import Agent
from agent.cli.main import main
from agent.models.scripted import ScriptedModel


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the command line; it must exit 2 with one error line (and at most a hint); returns it."""
    try:
        code = main(list(argv))
    except SystemExit as exit:
        code = exit.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 2, err
    assert "usage:" not in err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["solve", "--max-seconds", "-1", "q"], "above zero"),
        (["solve", "--max-seconds", "0", "q"], "above zero"),
        (["solve", "--max-tool-seconds", "-2", "q"], "above zero"),
        (["solve", "--min-thinking", "-4", "q"], "zero or more"),
        (["solve", "--max-steps", "two", "q"], "must be a number above zero, not 'two'"),
        (["solve", ""], "question is empty"),
        (["solve", "   "], "question is empty"),
        (["eval", "data.jsonl", "--offset", "-3"], "zero or more"),
        (["solve", "--n-gpu-layers", "-5", "q"], "-1 for all"),
        (["bench", "--n-gpu-layers", "-5"], "-1 for all"),
        (["solve", "--ctx", "0", "q"], "above zero"),
        (["solve", "--no-such-flag", "q"], "unrecognized"),
    ],
)
def test_values_that_mean_nothing_are_refused(capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    line = refused(capsys, *argv)
    assert says in line
    assert line.startswith("qwq-agent")


def test_an_error_names_its_command_and_hints_at_help(capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, "solve", "--max-seconds", "-1", "q")
    with pytest.raises(SystemExit):
        main(["solve", "--max-seconds", "-1", "q"])
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "qwq-agent solve: error: argument --max-seconds: must be a number above zero, not -1.0",
        "(try: qwq-agent solve --help)",
    ]


@pytest.mark.parametrize("argv", [["solve", "--model-n", "x", "q"], ["solve", "--max-step", "3", "q"]])
def test_abbreviated_flags_are_refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    # argparse would read --model-n as --model-name and --max-step as --max-steps
    line = refused(capsys, *argv)
    assert line.startswith("qwq-agent solve: error: unrecognized arguments: --")  # the command's own parser says it


def test_abbreviations_are_refused_in_compare_options_too() -> None:
    from agent.cli import eval as eval_command
    from agent.cli.main import build_parser

    args = build_parser().parse_args(["eval", "data.jsonl", "--compare=--max-step 2"])
    with pytest.raises(SystemExit):
        eval_command.compare_args(args)


def test_a_tool_choice_needs_tools(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "solve", "--tools", "none", "--tool-choice", "required", "q")
    assert "needs a tool" in line
    assert "loading model" not in line


def test_a_tool_choice_not_among_the_tools_lists_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "solve", "--tools", "calculator", "--tool-choice", "python", "q")
    assert "'python' is none of the tools" in line
    assert line.endswith("choose one of: auto, required, none, calculator (see --tools)")


def test_the_api_refuses_a_tool_choice_without_its_tool() -> None:
    def price(item: str) -> float:
        """A price.

        Args:
            item: what to price.
        """
        return 1.0

    with pytest.raises(ValueError, match="choose one of: auto, required, none, price"):
        Agent(ScriptedModel([]), [price], tool_choice="calculator")
    with pytest.raises(ValueError, match="needs a tool"):
        Agent(ScriptedModel([]), [], tool_choice="required")
    assert Agent(ScriptedModel([]), [price], tool_choice="price").settings.tool_choice == "price"


def test_good_values_still_parse() -> None:
    from agent.cli.main import build_parser

    args = build_parser().parse_args(
        ["solve", "--max-seconds", "2.5", "--n-gpu-layers", "-1", "--min-thinking", "0", "--max-steps", "3", "q"]
    )
    assert (args.max_seconds, args.n_gpu_layers, args.min_thinking, args.max_steps) == (2.5, -1, 0, 3)
    assert build_parser().parse_args(["eval", "d.jsonl", "--offset", "0"]).offset == 0
