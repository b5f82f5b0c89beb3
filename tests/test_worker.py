"""Tests of tools.worker: a JSON-lines child process with deadlines, restarts and a clean stop.

The children are small Python scripts; every failure is judged by its host effect (the child
and its own children are gone, the cleanup ran, the next call is answered by a new process).
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tools.worker import Launch, StartFailed, Worker, WorkerDied, WorkerGarbled, WorkerTimeout

CHILD = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        action = request.get("do")
        if action == "sleep":
            time.sleep(60)
        elif action == "exit":
            os._exit(3)
        elif action == "garble":
            print("not json", flush=True)
        elif action == "long":
            print(json.dumps({"text": "x" * 100_000}), flush=True)
        elif action == "spawn":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            print(json.dumps({"grandchild": child.pid}), flush=True)
        else:
            print(json.dumps({"echo": request}), flush=True)
    """
)


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _gone(pid: int) -> bool:
    for _ in range(500):  # a killed process needs a moment to be reaped by its parent
        if not _alive(pid):
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def worker(tmp_path: Path):  # type: ignore[no-untyped-def]
    scratch = tmp_path / "scratch"

    def launch() -> Launch:
        scratch.mkdir(exist_ok=True)
        return Launch([sys.executable, "-c", CHILD], cwd=str(scratch), cleanup=lambda: scratch.rmdir())

    handle = Worker(launch, startup_seconds=30, max_line_bytes=10_000)
    yield handle
    handle.stop()


def test_answers_and_greets(worker: Worker) -> None:
    assert worker.ask({"n": 1}, 10) == {"echo": {"n": 1}}
    assert worker.greeting is not None and worker.greeting["pid"] == worker.pid
    assert worker.ask({"n": 2}, 10) == {"echo": {"n": 2}}


@pytest.mark.parametrize(
    ("action", "error"),
    [("sleep", WorkerTimeout), ("exit", WorkerDied), ("garble", WorkerGarbled), ("long", WorkerGarbled)],
)
def test_a_failed_call_ends_the_child_and_the_next_call_gets_a_new_one(
    worker: Worker, action: str, error: type[Exception], tmp_path: Path
) -> None:
    worker.ask({}, 10)
    first = worker.pid
    assert first is not None
    with pytest.raises(error):
        worker.ask({"do": action}, 0.5)
    assert _gone(first)
    assert not (tmp_path / "scratch").exists()  # the launch's cleanup ran
    assert worker.ask({"n": 3}, 10) == {"echo": {"n": 3}}
    assert worker.pid not in (None, first)


def test_stop_kills_the_whole_process_group(worker: Worker, tmp_path: Path) -> None:
    grandchild = worker.ask({"do": "spawn"}, 10)["grandchild"]
    child = worker.pid
    assert child is not None and _alive(grandchild)
    worker.stop()
    assert _gone(child) and _gone(grandchild)
    assert not (tmp_path / "scratch").exists()


def test_a_child_that_never_gets_ready_reports_its_stderr() -> None:
    crash = "import sys; sys.stderr.write('no such module: sympy'); sys.exit(1)"
    worker = Worker(lambda: Launch([sys.executable, "-c", crash], capture_stderr=True))
    with pytest.raises(StartFailed) as failure:
        worker.ask({}, 10)
    assert "no such module: sympy" in failure.value.stderr
    assert worker.pid is None


def test_an_eager_worker_is_running_before_the_first_call_and_after_a_failure() -> None:
    worker = Worker(lambda: Launch([sys.executable, "-c", CHILD]), eager=True)
    try:
        first = worker.pid
        assert first is not None
        with pytest.raises(WorkerDied):
            worker.ask({"do": "exit"}, 10)
        assert worker.pid not in (None, first)
    finally:
        worker.stop()


def test_the_child_gets_its_own_session() -> None:
    worker = Worker(lambda: Launch([sys.executable, "-c", CHILD]))
    try:
        worker.ask({}, 10)
        assert worker.pid is not None
        assert os.getsid(worker.pid) == worker.pid != os.getsid(0)  # Ctrl-C at the terminal reaches the parent only
    finally:
        worker.stop()


def test_a_command_that_cannot_start_is_a_start_failure() -> None:
    worker = Worker(lambda: Launch(["/nonexistent/python"]))
    with pytest.raises(StartFailed, match="could not start"):
        worker.ask({}, 10)
    assert worker.pid is None
