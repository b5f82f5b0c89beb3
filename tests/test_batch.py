"""Batches: task files, whole-line appends, SIGKILL and resume (each id exactly once), the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import call

from agent import Agent
from agent.cli import main
from agent.models.scripted import ScriptedModel
from agent.workloads.batch import BatchError, Progress, finished_ids, read_tasks, run_batch
from tools import tool

ROOT = Path(__file__).resolve().parent.parent


def write_tasks(path: Path, n: int) -> None:
    path.write_text("".join(json.dumps({"id": f"t{i}", "question": f"What is {i} + {i}?"}) + "\n" for i in range(n)))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"id": 1, "question": "a"}\n{"id": 2, "question": "b"\n', ":2: not JSON"),
        ('{"id": 1, "question": "a"}\n\n["x"]\n', ":3: each line must be an object"),
        ('{"question": "a"}\n', ':1: needs an "id"'),
        ('{"id": true, "question": "a"}\n', ':1: needs an "id"'),
        ('{"id": 1, "question": ""}\n', ':1: needs a "question"'),
        ('{"id": 1, "question": "a"}\n{"id": "1", "question": "b"}\n', ":2: id '1' is already used on line 1"),
    ],
)
def test_bad_task_files_name_the_line(tmp_path: Path, content: str, problem: str) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(content)
    with pytest.raises(BatchError, match=problem.replace("[", r"\[")):
        read_tasks(tasks)


def test_a_torn_last_line_is_cut_off_and_its_task_rerun(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "t0", "answer": "0"}\n{"id": "t1", "answ')
    assert finished_ids(out) == {"t0"}
    assert out.read_text() == '{"id": "t0", "answer": "0"}\n'


def test_a_batch_answers_each_task_once_and_a_rerun_skips_them(tmp_path: Path) -> None:
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    write_tasks(tasks, 3)
    agent = Agent(ScriptedModel(["0", "2", "4"]), [], examples=())
    seen: list[Progress] = []
    final = run_batch(agent, tasks, out, progress=seen.append)
    assert (final.answered, final.skipped, final.failed) == (3, 0, 0)
    assert [p.done for p in seen] == [1, 2, 3] and "[3/3] 3 answered" in final.line()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["answer"], r["stop_reason"]) for r in lines] == [
        ("t0", "0", "answer"),
        ("t1", "2", "answer"),
        ("t2", "4", "answer"),
    ]
    again = run_batch(Agent(ScriptedModel([]), [], examples=()), tasks, out)  # an empty script: nothing may run
    assert (again.answered, again.skipped) == (0, 3) and len(out.read_text().splitlines()) == 3


def test_a_failing_task_is_reported_not_written_and_retried_next_run(tmp_path: Path) -> None:
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    write_tasks(tasks, 2)
    failures: list[tuple[str, int, str]] = []
    agent = Agent(ScriptedModel(["0"]), [], examples=())  # the script runs dry on t1
    final = run_batch(agent, tasks, out, failed=lambda task, exc: failures.append((task.id, task.line, str(exc))))
    assert (final.answered, final.failed) == (1, 1)
    assert failures == [("t1", 2, "the script has no more turns")]
    assert finished_ids(out) == {"t0"}
    assert run_batch(Agent(ScriptedModel(["2"]), [], examples=()), tasks, out).answered == 1
    assert finished_ids(out) == {"t0", "t1"}


def test_approvals_in_a_batch_are_declined(tmp_path: Path) -> None:
    @tool(needs_approval=True)
    def remove(path: str) -> str:
        """Remove a file.

        Args:
            path: The file.
        """
        raise AssertionError("must not run")

    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    write_tasks(tasks, 1)
    run_batch(Agent(ScriptedModel([call("remove", path="x"), "could not"]), [remove], examples=()), tasks, out)
    record = json.loads(out.read_text())
    assert record["answer"] == "could not" and "declined" in record["tool_calls"][0]["output"]


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    from agent import Agent
    from agent.workloads.batch import run_batch
    from agent.models.scripted import ScriptedModel
    from tools import tool

    LOG = os.environ["LOG"]

    @tool
    def work(task: str) -> str:
        \"\"\"Work on a task.

        Args:
            task: Which one.
        \"\"\"
        with open(LOG, "a") as f:
            f.write(task + "\\n")
        if task == os.environ.get("BLOCK_ON"):
            time.sleep(3600)
        return "worked"

    # Every task: a call to work, then the answer. A resumed run starts at the first unfinished task.
    first = int(os.environ["FIRST"])
    turns = []
    for i in range(first, 6):
        body = '{{"name": "work", "arguments": {{"task": "t%d"}}}}' % i
        turns += ["<tool_call>\\n" + body + "\\n</tool_call>", "answer %d" % i]
    agent = Agent(ScriptedModel(turns), [work], examples=())
    run_batch(agent, sys.argv[1], sys.argv[2])
    """
)


def test_a_batch_killed_mid_task_ends_with_every_id_once(tmp_path: Path) -> None:
    tasks, out, log = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl", tmp_path / "log"
    write_tasks(tasks, 6)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    env = {**os.environ, "LOG": str(log), "BLOCK_ON": "t3", "FIRST": "0"}
    proc = subprocess.Popen([sys.executable, str(script), str(tasks), str(out)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (log.exists() and "t3" in log.read_text().split()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "task t3 never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert finished_ids(out) == {"t0", "t1", "t2"}

    env = {**env, "BLOCK_ON": "", "FIRST": "3"}
    rerun = subprocess.run(
        [sys.executable, str(script), str(tasks), str(out)], env=env, capture_output=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [f"t{i}" for i in range(6)]  # each exactly once
    answers = {json.loads(line)["id"]: json.loads(line)["answer"] for line in out.read_text().splitlines()}
    assert answers == {f"t{i}": f"answer {i}" for i in range(6)}
    # Only the task cut off by the kill ran twice.
    assert log.read_text().split() == ["t0", "t1", "t2", "t3", "t3", "t4", "t5"]


@pytest.mark.model
def test_the_batch_command_on_the_embedded_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    tasks.write_text(json.dumps({"id": "a", "question": "What is 37 * 89 + 12?"}) + "\n")
    argv = ["batch", str(tasks), "-o", str(out), "--tools", "calculator", "--seed", "0", "--max-steps", "3"]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["id"] == "a" and record["tool_calls"][0]["name"] == "calculator"
    assert "[1/1] 1 answered" in capsys.readouterr().err
    assert main(argv) == 0 and "1 skipped" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    assert main(["batch", str(bad), "-o", str(out)]) == 2
    assert f"{bad}:1: not JSON" in capsys.readouterr().err


@pytest.mark.model
def test_concurrent_episodes_on_one_in_process_model_keep_their_answers(tmp_path: Path) -> None:
    from agent.models.llama_cpp import LlamaCppModel
    from tools import default_tools

    # Three workers share one llama.cpp context: each episode's call must be about its own question.
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    numbers = {"a": (37, 89), "b": (64, 23), "c": (51, 76)}
    tasks.write_text(
        "".join(json.dumps({"id": k, "question": f"What is {x} * {y}?"}) + "\n" for k, (x, y) in numbers.items())
    )
    agent = Agent(
        LlamaCppModel(seed=0), default_tools(["calculator"]), tool_choice="calculator", max_steps=1, max_tokens=200
    )
    final = run_batch(agent, tasks, out, workers=3)
    assert final.failed == 0
    for record in map(json.loads, out.read_text().splitlines()):
        x, y = numbers[record["id"]]
        call = record["tool_calls"][0]
        assert str(x) in call["arguments"]["expression"] and str(y) in call["arguments"]["expression"], record
