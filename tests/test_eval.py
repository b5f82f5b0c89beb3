"""Tests of `qwq-agent eval`: data-set shapes, resuming, summaries, and 3 GSM8K items end to end.

The end-to-end test runs the real embedded model with tight budgets; everything else runs on
fake episodes, so it is instant. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.core.records import Result, ToolCall, Usage
from agent.workloads.evaluation import (
    Item,
    ItemResult,
    compare,
    evaluate,
    load_items,
    read_results,
    summarize,
    summary_json,
    wilson_interval,
)

FIXTURE = Path(__file__).parent / "fixtures/gsm8k_sample.jsonl"


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Shapes


def test_gsm8k_shape_takes_the_number_after_the_marks() -> None:
    items = load_items(FIXTURE)
    assert [i.reference for i in items] == ["18", "3", "70000", "540", "20"]
    assert items[0].question.startswith("Janet")
    assert [i.id for i in items] == ["0", "1", "2", "3", "4"]  # line numbers: stable across runs


def test_offset_and_limit_keep_line_numbers_as_ids() -> None:
    items = load_items(FIXTURE, offset=2, limit=2)
    assert [i.id for i in items] == ["2", "3"]
    assert [i.reference for i in items] == ["70000", "540"]


def test_math_shape_problem_and_answer(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "math.jsonl",
        [
            {"problem": "Compute $\\frac{1}{2}+\\frac{1}{3}$.", "answer": "\\frac{5}{6}", "unique_id": "algebra/1"},
            {"Problem": "AIME: find n.", "Answer": 204, "ID": "2024-I-1"},
        ],
    )
    items = load_items(path)
    assert items == [
        Item("algebra/1", "Compute $\\frac{1}{2}+\\frac{1}{3}$.", "\\frac{5}{6}"),
        Item("2024-I-1", "AIME: find n.", "204"),
    ]


def test_math_shape_with_only_a_solution_uses_its_last_box(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "math.jsonl",
        [{"problem": "Simplify.", "solution": "First $\\boxed{1}$ is wrong; it is $\\boxed{\\frac{a}{b}}$."}],
    )
    assert load_items(path)[0].reference == "\\frac{a}{b}"


def test_generic_shape_with_named_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"q": "2+2?", "gold": "4", "key": "k1"}])
    items = load_items(path, question_key="q", answer_key="gold", id_key="key")
    assert items == [Item("k1", "2+2?", "4")]


def test_a_record_that_fits_no_shape_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "ok", "answer": "1"}, {"text": "no"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:2: no question/answer columns \(keys: text\)"):
        load_items(path)


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"question": "a", "answer": "1"}\n{not json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: not JSON"):
        load_items(path)


# ---------------------------------------------------------------------------------------------
# Running and resuming, on fake episodes


class FakeAgent:
    """Answers from a table; optionally raises KeyboardInterrupt on a given question."""

    def __init__(self, answers: dict[str, str], interrupt_on: str | None = None) -> None:
        self.answers, self.interrupt_on, self.asked = answers, interrupt_on, []  # type: ignore[var-annotated]

    def run(self, question: str) -> Result:
        self.asked.append(question)
        if question == self.interrupt_on:
            raise KeyboardInterrupt
        if question == "boom":
            raise RuntimeError("model fell over")
        calls = (ToolCall("calculator", {"expression": "1+1"}, "2"),)
        usage = Usage(steps=2, generated_tokens=10, prompt_evaluated=100, thinking_tokens=0)
        return Result(f"The answer is {self.answers[question]}.", "", calls, usage)


ITEMS = [Item(str(k), f"q{k}", str(k * 10)) for k in range(5)]
RIGHT_ANSWERS = {f"q{k}": str(k * 10) for k in range(5)}


def test_results_are_written_per_item_and_graded(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    answers = RIGHT_ANSWERS | {"q3": "31"}
    results = evaluate(ITEMS, FakeAgent(answers).run, output=out)
    assert [r.correct for r in results] == [True, True, True, False, True]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 5
    assert lines[3] | {"seconds": 0} == {
        "id": "3",
        "config": "base",
        "prediction": "31",
        "reference": "30",
        "correct": False,
        "answer": "The answer is 31.",
        "stop_reason": "answer",
        "steps": 2,
        "tool_calls": 1,
        "tool_errors": 0,
        "invalid_calls": 0,
        "generated_tokens": 10,
        "thinking_tokens": 0,
        "prompt_evaluated": 100,
        "seconds": 0,
        "error": None,
        "verdict": None,
    }


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    first = FakeAgent(RIGHT_ANSWERS, interrupt_on="q3")
    with pytest.raises(KeyboardInterrupt):
        evaluate(ITEMS, first.run, output=out)
    assert len(read_results(out)) == 3
    with out.open("a") as f:
        f.write('{"id": "3", "config": "ba')  # a line cut off as the process died
    second = FakeAgent(RIGHT_ANSWERS)
    results = evaluate(ITEMS, second.run, output=out)
    assert second.asked == ["q3", "q4"]  # finished items are not run again
    assert [r.id for r in results] == ["0", "1", "2", "3", "4"]
    assert all(r.correct for r in results)
    assert len(read_results(out)) == 5
    third = FakeAgent(RIGHT_ANSWERS)
    evaluate(ITEMS, third.run, output=out)
    assert third.asked == []


def test_a_second_configuration_resumes_separately(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    evaluate(ITEMS, FakeAgent(RIGHT_ANSWERS).run, output=out)
    other = FakeAgent(RIGHT_ANSWERS | {"q0": "1"})
    results = evaluate(ITEMS, other.run, output=out, config="compare")
    assert len(other.asked) == 5
    comparison = compare(read_results(out)[:5], results)
    assert (comparison.n_paired, comparison.difference, comparison.only_base, comparison.only_other) == (5, -0.2, 1, 0)


def test_a_failing_episode_is_recorded_not_fatal(tmp_path: Path) -> None:
    items = [Item("a", "boom", "1"), Item("b", "q1", "10")]
    results = evaluate(items, FakeAgent(RIGHT_ANSWERS).run, output=tmp_path / "r.jsonl")
    assert results[0].error == "RuntimeError: model fell over" and not results[0].correct
    assert results[1].correct
    assert summarize(results).errors == 1


def test_parallel_workers_grade_every_item(tmp_path: Path) -> None:
    results = evaluate(ITEMS, FakeAgent(RIGHT_ANSWERS).run, output=tmp_path / "r.jsonl", workers=3)
    assert sorted(r.id for r in results) == [i.id for i in ITEMS] and all(r.correct for r in results)


# ---------------------------------------------------------------------------------------------
# Summaries


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson_interval(0, 10)[0] == 0.0 and round(wilson_interval(0, 10)[1], 4) == 0.2775
    assert round(wilson_interval(10, 10)[1], 9) == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_json_has_n_accuracy_and_costs() -> None:
    results = [
        ItemResult("1", "base", "4", "4", True, steps=2, tool_calls=1, generated_tokens=30, seconds=1.0),
        ItemResult("2", "base", "5", "6", False, steps=4, tool_calls=3, generated_tokens=50, seconds=3.0),
    ]
    data = summary_json(summarize(results))
    assert data["n"] == 2 and data["accuracy"] == 0.5 and data["correct"] == 1
    assert (data["mean_steps"], data["mean_tool_calls"], data["mean_seconds"]) == (3.0, 2.0, 2.0)
    assert 0 < data["ci_low"] < 0.5 < data["ci_high"] < 1
    json.dumps(data)  # JSON-ready


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from agent.workloads.evaluation import plot

    summary = summarize([ItemResult("1", "base", "4", "4", True)])
    plot([summary, summarize([ItemResult("1", "none", "", "4", False)], "none")], tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_options_lay_over_the_base_options() -> None:
    from agent.cli import build_parser
    from agent.cli.eval import compare_args

    args = build_parser().parse_args(["eval", "d.jsonl", "--max-steps", "3", "--compare", "--tools none"])
    other = compare_args(args)
    assert (args.tools, other.tools) == ("calculator,python", "none")
    assert other.max_steps == 3  # kept from the base configuration


# ---------------------------------------------------------------------------------------------
# End to end on the embedded model


@pytest.mark.model
def test_eval_three_gsm8k_items_end_to_end_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    command = [
        sys.executable,
        "-m",
        "agent.cli",
        "eval",
        str(FIXTURE),
        "--limit",
        "3",
        "--json",
        "-o",
        str(out),
        "--tools",
        "calculator",
        "--max-steps",
        "2",
        "--max-tokens",
        "96",
        "--seed",
        "0",
        "--ctx",
        "2048",
        "--workers",
        "2",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["n"] == 3 and 0.0 <= summary["accuracy"] <= 1.0
    assert summary["mean_steps"] >= 1 and summary["errors"] == 0
    assert "running serially" not in first.stderr  # two sequences of one in-process model
    results = sorted(read_results(out), key=lambda r: r.id)  # written as each ends
    assert [r.id for r in results] == ["0", "1", "2"]
    assert [r.reference for r in results] == ["18", "3", "70000"]
    assert all(r.generated_tokens > 0 and r.seconds > 0 for r in results)
    assert summary["correct"] == sum(r.correct for r in results)

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == summary  # nothing ran again: the same file, the same summary
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.model
@pytest.mark.parametrize("seed", ["0", "1"])
@pytest.mark.parametrize("held_out", ["arithmetic_heldout.jsonl", "arithmetic_heldout3.jsonl"])
def test_the_embedded_model_answers_held_out_arithmetic(tmp_path: Path, held_out: str, seed: str) -> None:
    """Issue 13's bar: 9 of 10 right, every call valid, every episode answered. The third set is the
    hardest (nested and leading groups): 7 of 10 before calls favoured copying the question."""
    held_out = Path(__file__).parent / "fixtures" / held_out
    command = [sys.executable, "-m", "agent.cli", "eval", str(held_out), "--seed", seed, "--offline", "--json"]
    run = subprocess.run([*command, "-o", str(tmp_path / "results.jsonl")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["n"] == 10 and summary["errors"] == 0
    assert summary["answered"] == 1.0 and summary["calls"] >= 10 and summary["call_validity"] == 1.0
    assert summary["correct"] >= 9, [r.prediction for r in read_results(tmp_path / "results.jsonl") if not r.correct]


def test_only_models_that_serve_several_episodes_run_them_in_parallel() -> None:
    from agent.models.scripted import ScriptedModel
    from agent.workloads.evaluation import serves_in_parallel

    class Served:
        parallel = True

    assert serves_in_parallel(Served())
    assert not serves_in_parallel(ScriptedModel([]))


def test_call_validity_counts_calls_that_did_not_parse_or_named_no_tool() -> None:
    calls = {
        "q0": (ToolCall("calculator", {"expression": "1"}, "1"),),
        "q1": (ToolCall("", {}, "error: the tool call is not valid JSON", True), ToolCall("calculator", {}, "2")),
        "q2": (ToolCall("abacus", {}, "error: there is no tool named 'abacus'", True),),
        "q3": (),
    }

    def run(question: str) -> Result:
        return Result("The answer is 0.", "", calls[question], Usage(steps=1))

    items = [Item(str(k), f"q{k}", "0") for k in range(4)]
    results = evaluate(items, run, tools=["calculator"])
    assert [r.invalid_calls for r in results] == [0, 1, 1, 0]
    summary = summarize(results)
    assert (summary.calls, summary.call_validity) == (4, 0.5)
    assert summarize(results[:1]).call_validity == 1.0 and summarize(results[3:]).call_validity == 1.0
