"""Workflows: variables flowing between steps, errors that name the line, the examples, `qwq-agent run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.models.scripted import ScriptedModel
from agent.workloads.workflow import WorkflowError, load_workflow, parse_vars

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PIPELINE = """\
name: Pipeline
vars:
  x: 3
  who: null
steps:
  - id: double
    prompt: "Double {{x}} for {{ who }}."
    tools: []
  - id: report
    prompt: "Report {{double}} (from {{x}})."
    tools: []
    max_steps: 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    return path


def test_answers_flow_into_later_prompts(tmp_path: Path) -> None:
    flow = load_workflow(write(tmp_path, PIPELINE))
    assert [s.id for s in flow.steps] == ["double", "report"] and flow.output == "report"
    model = ScriptedModel(["6", "The result is 6."])
    outcome = flow.run(model, {"who": "Ann", "x": "3"})
    assert outcome.answer == "The result is 6."
    prompts = ["".join(map(chr, p)) for p in model.prompts]
    assert "Double 3 for Ann.<|im_end|>" in prompts[0]
    assert "Report 6 (from 3).<|im_end|>" in prompts[1]
    assert "Double 3" not in prompts[1]  # each step is an episode of its own


def test_a_step_without_an_answer_stops_the_workflow(tmp_path: Path) -> None:
    flow = load_workflow(write(tmp_path, PIPELINE.replace("    tools: []\n    max_steps: 2\n", "    tools: []\n")))
    outcome = flow.run(ScriptedModel(["", ""]), {"who": "Ann"})  # empty turns: no answer, even when asked
    assert outcome.answer is None and [s for s, _ in outcome.steps] == ["double"]


def test_our_protocol_text_as_a_steps_answer_stops_the_workflow(tmp_path: Path) -> None:
    echoed = "<tool_response>\nYou already called add with these arguments (1 time(s)); it returned: 6"
    limit = "You've reached the limit for this task (steps). Do not call any more tools."
    flow = load_workflow(write(tmp_path, PIPELINE))
    outcome = flow.run(ScriptedModel([echoed, limit, "The result is 6."]), {"who": "Ann"})
    assert outcome.answer is None and [s for s, _ in outcome.steps] == ["double"]  # never passed on
    assert outcome.steps[0][1].stop_reason == "no_answer"


def test_variables_must_be_known_and_given(tmp_path: Path) -> None:
    flow = load_workflow(write(tmp_path, PIPELINE))
    with pytest.raises(WorkflowError, match="give a value with --var for: who"):
        flow.bind({})
    with pytest.raises(WorkflowError, match="no such variable \\(did you mean 'who'\\?\\)"):
        flow.bind({"who": "a", "whom": "b"})
    assert parse_vars(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(WorkflowError, match="NAME=VALUE"):
        parse_vars(["novalue"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ":1: the file is empty"),
        ("steps:\n  - id: a\n    prompt: [unclosed\n", ":4: not valid YAML"),
        ("name: x\n", ":1: workflow: needs a 'steps' list"),
        ("steps: []\n", ":1: steps: must be a non-empty list"),
        ("steps:\n  - id: a\n    promt: hi\n", ":3: steps\\[1\\]: unknown key 'promt' \\(did you mean 'prompt'\\?\\)"),
        ("steps:\n  - id: a\n", ":2: steps\\[1\\]: needs 'prompt'"),
        ("steps:\n  - id: a\n    prompt: hi\n  - id: a\n    prompt: ho\n", ":4: steps\\[2\\].id: 'a' is already"),
        ("steps:\n  - id: a b\n    prompt: hi\n", ":2: steps\\[1\\].id: 'a b' is not a name"),
        ("steps:\n  - id: a\n    prompt: '{{ansr}}'\n", ":3: a.prompt: unknown variable {{ansr}}; known here: none"),
        (
            "vars:\n  answer: 1\nsteps:\n  - id: a\n    prompt: '{{ansver}}'\n",
            ":5: a.prompt: unknown variable {{ansver}} \\(did you mean 'answer'\\?\\)",
        ),
        (
            "steps:\n  - id: a\n    prompt: '{{b}}'\n  - id: b\n    prompt: hi\n",
            ":3: a.prompt: {{b}} is the answer of a later step",
        ),
        ("steps:\n  - id: a\n    prompt: '{{a}}'\n", ":3: a.prompt: {{a}} is this step's own answer"),
        ("steps:\n  - id: a\n    prompt: hi\n    max_steps: many\n", ":4: a.max_steps: must be a number above zero"),
        ("steps:\n  - id: a\n    prompt: hi\n    max_steps: 0\n", ":4: a.max_steps: must be a number above zero"),
        ("steps:\n  - id: a\n    prompt: hi\n    tools: [calculater]\n", ":4: a.tools: no built-in tool 'calculater'"),
        ("steps:\n  - id: a\n    prompt: hi\n    tools: calculator\n", ":4: a.tools: must be a list"),
        ("defaults:\n  max_step: 3\nsteps:\n  - id: a\n    prompt: hi\n", ":2: defaults: unknown key 'max_step'"),
        ("steps:\n  - id: a\n    prompt: hi\noutput: b\n", ":4: output: names no step"),
        ("vars:\n  1x: 2\nsteps:\n  - id: a\n    prompt: hi\n", ":2: vars: '1x' is not a variable name"),
        ("steps:\n  - id: a\n    prompt: hi\n    prompt: ho\n", ":4: steps\\[1\\]: 'prompt' is given twice"),
    ],
)
def test_errors_name_the_line_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(WorkflowError, match=f"^{tmp_path / 'flow.yaml'}{message}"):
        load_workflow(write(tmp_path, text))


def test_the_examples_are_valid() -> None:
    interest = load_workflow(EXAMPLES / "compound_interest.yaml")
    assert [s.id for s in interest.steps] == ["compute", "verify", "report"]
    assert interest.steps[0].options == {"max_steps": 4, "max_tokens": 1024, "tools": ["calculator"]}
    brief = load_workflow(EXAMPLES / "research_brief.yaml")
    assert [s.id for s in brief.steps] == ["facts", "density", "check", "brief"]
    with pytest.raises(WorkflowError, match="country"):
        brief.bind({})
    tasks = [json.loads(line) for line in (EXAMPLES / "tasks.jsonl").read_text().splitlines()]
    assert len({t["id"] for t in tasks}) == len(tasks) >= 5


def test_the_run_command_reports_a_bad_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "steps:\n  - id: a\n    prompt: '{{nope}}'\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qwq-agent: error: {path}:3: a.prompt: unknown variable") and err.count("\n") == 1
    assert main(["run", str(EXAMPLES / "compound_interest.yaml"), "--var", "principle=5"]) == 2
    assert "did you mean 'principal'" in capsys.readouterr().err


SMALL = """\
name: Small
vars:
  a: 37
steps:
  - id: product
    prompt: "What is {{a}} * 89 + 12?"
    tools: [calculator]
    max_steps: 2
    max_tokens: 160
  - id: report
    prompt: "Say in one short sentence that the result is {{product}}."
    tools: []
    max_steps: 1
    max_tokens: 60
"""


@pytest.mark.model
def test_a_workflow_runs_on_the_embedded_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Tight budgets: the tiny model exercises the machinery, it is no reasoner (the examples are
    # sized for real models and take minutes here).
    code = main(["run", str(write(tmp_path, SMALL)), "--var", "a=37", "--seed", "0", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["workflow"] == "Small" and list(out["steps"]) in (["product"], ["product", "report"])
    first = out["steps"]["product"]
    assert first["tool_calls"][0]["name"] == "calculator"
    assert "37" in first["tool_calls"][0]["arguments"]["expression"]  # the variable reached the prompt
    assert code == (0 if out["answer"] is not None else 1)


def test_every_problem_of_a_file_is_reported_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "nmae: typo\n"  # 1
        "steps:\n"  # 2
        "  - id: first\n"  # 3
        "    promt: hi\n"  # 4: misspelt; "needs 'prompt'" would only repeat it
        "    max_steps: 0\n"  # 5
        "  - id: second\n"  # 6
        "    prompt: 'use {{first}} and {{thrid}}'\n"  # 7: first is known even though its step is wrong
        "    tools: [calculater]\n"  # 8
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(write(tmp_path, text))
    lines = str(caught.value).splitlines()
    where = str(tmp_path / "flow.yaml")
    assert [line.split(": ")[0] for line in lines] == [f"{where}:{n}" for n in (1, 4, 5, 7, 8)]
    assert "unknown key 'nmae' (did you mean 'name'?)" in lines[0]
    assert "unknown key 'promt' (did you mean 'prompt'?)" in lines[1]
    assert "first.max_steps: must be a number above zero" in lines[2]
    assert "second.prompt: unknown variable {{thrid}}" in lines[3] and "{{first}}" not in lines[3]
    assert "second.tools: no built-in tool 'calculater'" in lines[4]
    assert main(["run", str(tmp_path / "flow.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("qwq-agent: error: ") and len(err) == 5 and "Traceback" not in "".join(err)


def test_a_file_with_no_steps_still_reports_what_came_before(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as caught:
        load_workflow(write(tmp_path, "nmae: x\nsteps: []\n"))
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and "unknown key 'nmae'" in lines[0] and "steps: must be a non-empty list" in lines[1]
