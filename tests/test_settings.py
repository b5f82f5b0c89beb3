"""One options object: `Settings` (with `Budget` and `Controls`) is the only place an option is defined.

The Python API lays options over it by name, the command line's flags are derived from its
fields, and a workflow step accepts any of them, checked against its type.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from helpers import add

from agent import Agent, Budget, Controls, Settings
from agent.cli import build_parser
from agent.cli.options import given_options
from agent.core.settings import OPTIONS, check_option
from agent.models.scripted import ScriptedModel
from agent.workloads.workflow import WorkflowError, load_workflow


def test_options_go_to_the_dataclass_that_holds_them() -> None:
    settings = Settings().with_options(max_steps=2, thinking_budget=7, verify=True, reasoning="auto")
    assert (settings.budget.max_steps, settings.controls.thinking_budget, settings.verify) == (2, 7, True)
    assert settings.reasoning is None and settings.budget.max_tokens == Budget().max_tokens
    whole = Settings().with_options(budget=Budget(max_steps=5), controls=Controls(hint="H"), max_tokens=9)
    assert (whole.budget.max_steps, whole.budget.max_tokens, whole.controls.hint) == (5, 9, "H")
    with pytest.raises(TypeError, match="unknown option max_step;"):
        Settings().with_options(max_step=3)


def test_the_agent_resolves_what_depends_on_the_model_and_the_tools() -> None:
    instruct = Agent(ScriptedModel([]), [add], hint=True)
    assert instruct.settings.tool_choice == "required" and instruct.settings.controls.hint == (
        "Wait, maybe using a tool here is a good idea."
    )
    assert instruct.settings.examples == ()  # the one-shot example calls the calculator, which is not here
    thinker = Agent(ScriptedModel([], thinking=True), [add], tool_choice=None, system_prompt="Be brief.")
    assert (thinker.settings.tool_choice, thinker.settings.system_prompt) == ("auto", "Be brief.")
    assert thinker.wanted.tool_choice is None  # what was asked, kept for agents derived from it
    derived = thinker.derive([], max_steps=1)
    assert (derived.settings.budget.max_steps, derived.settings.system_prompt, list(derived.tools)) == (
        1,
        "Be brief.",
        [],
    )
    with pytest.raises(TypeError, match="options for loading a model"):
        Agent(ScriptedModel([]), [], context_size=4096)
    with pytest.raises(ValueError, match="samples must be at least 1"):
        Agent(ScriptedModel([]), [], samples=0)


def test_every_option_with_a_flag_is_on_the_command_line() -> None:
    flagged = [name for name, option in OPTIONS.items() if option.cli is not None]
    args = build_parser().parse_args(
        ["solve", "q", "--max-steps", "2", "--thinking", "on", "--hint", "--approve", "never", "--verify"]
    )
    assert given_options(args) == {"max_steps": 2, "reasoning": True, "hint": True, "approval": "never", "verify": True}
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    help_text = commands.choices["solve"].format_help()
    for name in flagged:
        flag = OPTIONS[name].cli["flag"] or "--" + name.replace("_", "-")  # type: ignore[index]
        assert flag in help_text, name
    assert given_options(build_parser().parse_args(["solve", "q"])) == {}  # defaults live in the dataclasses only
    with pytest.raises(SystemExit):
        build_parser().parse_args(["solve", "q", "--max-steps", "0"])


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("max_steps", 3, None),
        ("max_steps", 0, "must be a number above zero, not 0"),
        ("max_steps", True, "must be a number above zero, not True"),
        ("max_seconds", 1.5, None),
        ("min_thinking", 0, None),
        ("tool_choice", "calculator", None),
        ("calls_in_reasoning", "sometimes", "must be one of execute, ignore, not 'sometimes'"),
        ("approval", "never", None),
        ("verify", "yes", "must be true or false, not 'yes'"),
        ("hint", True, None),
        ("hint", "Use the tool.", None),
        ("wait_text", 3, "must be text, not 3"),
        ("nothing", 1, "no option 'nothing'"),
    ],
)
def test_check_option(name: str, value: object, problem: str | None) -> None:
    assert check_option(name, value) == problem


def test_a_workflow_step_takes_any_option(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("steps:\n  - id: a\n    prompt: hi\n    thinking_budget: 64\n    verify: true\n")
    assert load_workflow(flow).steps[0].options == {"thinking_budget": 64, "verify": True}
    flow.write_text("steps:\n  - id: a\n    prompt: hi\n    verify: maybe\n")
    with pytest.raises(WorkflowError, match=r":4: a.verify: must be true or false, not 'maybe'"):
        load_workflow(flow)
