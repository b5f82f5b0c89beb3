"""Countdown: solvable generated instances, the checker's rule, and grading in `eval` like any data set.

Everything but the last test runs without a model: episodes are fakes that answer from a table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.records import Result
from agent.workloads import countdown
from agent.workloads.countdown import Instance, check, generate, grade
from agent.workloads.evaluation import countdown_item, evaluate, load_items, summarize

ROOT = Path(__file__).resolve().parents[1]


def test_every_generated_instance_is_solvable_by_its_own_solution() -> None:
    instances = generate(300, seed=7)
    assert len({i.id for i in instances}) == 300
    for i in instances:
        verdict = check(i.solution, i.numbers, i.target)
        assert verdict.correct, (i, verdict)
        assert len(i.numbers) == 4 and all(1 <= x <= 99 for x in i.numbers)
        assert 10 <= i.target <= 100 and i.target not in i.numbers  # never given away


def test_the_knobs_set_how_many_numbers_their_range_and_the_targets() -> None:
    hard = generate(40, seed=1, count=6, low=1, high=100, targets=(100, 999))
    assert all(len(i.numbers) == 6 and 100 <= i.target <= 999 for i in hard)
    small = generate(20, seed=1, count=2, low=5, high=9, targets=(1, 100))
    assert all(len(i.numbers) == 2 and set(i.numbers) <= set(range(5, 10)) for i in small)
    assert all(check(i.solution, i.numbers, i.target).correct for i in hard + small)


def test_the_same_seed_gives_the_same_instances_and_a_prefix_for_fewer() -> None:
    assert generate(30, seed=0) == generate(30, seed=0)
    assert generate(30, seed=0)[:12] == generate(12, seed=0)
    assert generate(30, seed=0) != generate(30, seed=1)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"count": 1}, "2 to 8 numbers"),
        ({"count": 9}, "2 to 8 numbers"),
        ({"low": 0}, "the numbers' range"),
        ({"low": 50, "high": 10}, "the numbers' range"),
        ({"targets": (0, 10)}, "the targets' range"),
        ({"count": 2, "low": 1, "high": 1, "targets": (50, 60)}, "widen a range"),  # 1 and 1 reach 50 never
    ],
)
def test_knobs_that_make_no_sense_are_one_line_errors(knobs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        generate(5, **knobs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("expression", "correct", "reason"),
    [
        ("(25 - 5) * 3", True, "equals 60, using 25 5 3"),
        ("3 × (25 − 5)", True, "equals 60"),  # the calculator's reading of × and −
        (r"(25 - 5) \times 3", True, "equals 60"),
        ("3(25 - 5)", True, "equals 60"),  # an implicit product, as the calculator reads it
        ("(25 - 5) * 3 = 60", True, "equals 60"),
        ("60 = 3 * (25 - 5)", True, "equals 60"),
        ("25 * 3 - 5 - 5 - 5", False, "uses 5 3 times (given once)"),
        ("(25 - 5) * 3 * 1", False, "uses 1, which is not given"),
        ("60", False, "uses 60, which is not given"),
        ("25 * 3 - 5", False, "equals 70, not 60"),
        ("25 / 5 + 3", False, "equals 8, not 60"),
        ("(25 + 5) / (3 - 3)", False, "uses 3 twice (given once)"),
        ("3 ^ 5", False, "no powers"),
        ("sqrt(25) * 12", False, "no sqrt(...)"),
        ("25.0 + 35", False, "only whole numbers"),
        ("x * 3", False, "'x' is a name"),
        ("(25 - 5) * 3 = 61", False, "write one expression equal to 60"),
        ("25 < 60", False, "one expression, not a comparison"),
        ("(25 - 5 * 3", False, "cannot read it"),
        ("", False, "no expression"),
    ],
)
def test_the_checker_reads_the_expression_and_checks_numbers_and_value(
    expression: str, correct: bool, reason: str
) -> None:
    verdict = check(expression, (25, 5, 3, 7), 60)
    assert (verdict.correct, reason in verdict.reason) == (correct, True), verdict


def test_a_number_given_twice_may_be_used_twice_and_fractions_may_appear_on_the_way() -> None:
    assert check("5 * 5 - 1", (5, 5, 1), 24).correct
    assert not check("5 * 5 - 1", (5, 1), 24).correct
    assert check("(1 + 1 / 5) * 20", (1, 1, 5, 20), 24).correct  # 6/5 on the way
    assert check("8 / (3 - 3)", (8, 3, 3), 24).reason == "divides by zero"


def test_the_answer_is_taken_from_answer_tags_or_the_last_box() -> None:
    assert grade("<think>25-5 is 20</think> so <answer>(25 - 5) * 3</answer>", (25, 5, 3), 60).correct
    assert grade(r"Therefore \boxed{(25-5) \cdot 3}.", (25, 5, 3), 60).correct
    assert grade("The answer is (25 - 5) * 3.", (25, 5, 3), 60).correct
    number_only = grade("The answer is 60.", (25, 5, 3), 60)
    assert not number_only.correct and number_only.expression == "60"


def test_model_text_never_runs(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    attempts = [
        f"__import__('os').system('touch {canary}')",
        f"(lambda: open('{canary}', 'w'))()",
        f"[open('{canary}', 'w') for _ in (1,)]",
        f"3 + 5 if open('{canary}', 'w') else 8",
        f"exec(\"open('{canary}', 'w')\")",
    ]
    for text in attempts:
        assert not check(text, (3, 5, 8), 8).correct
    assert not canary.exists()


def test_instances_round_trip_through_a_data_file_and_tinyzero_records_load(tmp_path: Path) -> None:
    instances = generate(5, seed=2)
    path = tmp_path / "countdown.jsonl"
    lines = [json.dumps(countdown.to_record(i)) for i in instances]
    path.write_text("\n".join([*lines, json.dumps({"target": 24, "nums": [3, 8, 9]})]) + "\n")
    items = load_items(path)
    assert [i.numbers for i in items[:5]] == [i.numbers for i in instances]
    assert [i.reference for i in items[:5]] == [str(i.target) for i in instances]
    assert items[5].numbers == (3, 8, 9) and items[5].reference == "24" and items[5].id == "24 from 3 8 9"
    assert "3, 8, 9" in items[5].question and "equals 24" in items[5].question  # TinyZero's have no question


def answering(table: dict[str, str]):  # type: ignore[no-untyped-def]
    def run(question: str) -> Result:
        return Result(table[question], "", ())

    return run


def test_eval_grades_countdown_items_with_the_checker(tmp_path: Path) -> None:
    a, b, c = Instance((25, 5, 3), 60), Instance((3, 8, 9), 24), Instance((2, 7), 14)
    items = [countdown_item(i) for i in (a, b, c)]
    table = {
        items[0].question: r"I get \boxed{(25 - 5) * 3}",
        items[1].question: r"\boxed{24}",
        items[2].question: r"\boxed{7 * 2 * 2}",
    }
    results = evaluate(items, answering(table), output=tmp_path / "results.jsonl")
    assert [r.correct for r in results] == [True, False, False]
    assert [r.verdict for r in results] == [
        "equals 60, using 25 5 3",
        "uses 24, which is not given",
        "uses 2 twice (given once)",
    ]
    assert results[0].prediction == "(25 - 5) * 3" and summarize(results).correct == 1
    written = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [w["verdict"] for w in written] == [r.verdict for r in results]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_eval_writes_the_generated_data_file_without_a_model(tmp_path: Path) -> None:
    path = tmp_path / "cd.jsonl"
    done = cli("eval", "--task", "countdown", "--n", "7", "--seed", "3", "--numbers", "5", "--write-data", str(path))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["target"], tuple(r["numbers"])) for r in records] == [
        (i.target, i.numbers) for i in generate(7, seed=3, count=5)
    ]
    assert all(check(r["solution"], r["numbers"], r["target"]).correct for r in records)


@pytest.mark.parametrize(
    "args",
    [
        ["eval"],
        ["eval", "data.jsonl", "--task", "countdown"],
        ["eval", "data.jsonl", "--write-data", "x.jsonl"],
        ["eval", "--task", "countdown", "--number-range", "9-1"],
        ["eval", "--task", "countdown", "--numbers", "12"],
    ],
)
def test_bad_task_options_are_one_line_and_exit_2(args: list[str]) -> None:
    done = cli(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert len([line for line in done.stderr.splitlines() if "error" in line]) == 1


@pytest.mark.model
def test_eval_countdown_end_to_end_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    done = cli(
        "eval", "--task", "countdown", "--n", "2", "--seed", "0", "--max-steps", "2", "--max-tokens", "96",
        "--ctx", "2048", "-o", str(out), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    instances = {i.id: i for i in generate(2, seed=0)}
    assert summary["n"] == 2 and [r["id"] for r in lines] == list(instances)
    for line in lines:  # each verdict is the checker's, on what the model answered
        instance = instances[line["id"]]
        again = grade(line["answer"] or "", instance.numbers, instance.target)
        assert (line["correct"], line["verdict"]) == (again.correct, again.reason)
    assert summary["correct"] == sum(r["correct"] for r in lines)


def test_a_comparison_runs_on_the_same_generated_instances() -> None:
    from agent.cli.eval import compare_args
    from agent.cli.main import build_parser

    args = build_parser().parse_args(["eval", "--task", "countdown", "--n", "5", "--compare", "--tools none"])
    other = compare_args(args)
    assert (other.task, other.n, other.seed, other.tools) == ("countdown", 5, None, "none")
    assert args.tools == "calculator,python"
