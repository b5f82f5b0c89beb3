"""Batches: answer a JSONL file of tasks, one result line per task, resumable after any kill.

`run_batch(agent, TASKS.jsonl, OUT.jsonl, workers=N)` reads `{"id": ..., "question": ...}` lines
and appends one JSON line per finished task to the output. Each line goes out in a single
`write` on an `O_APPEND` file, and a torn last line (a kill mid-write, a full disk) is cut off
before a run starts, so the output is always whole lines. A rerun skips ids already in the
output: a batch killed and restarted ends with every task answered exactly once. With `workers`
above 1, that many episodes run at once, each on its own copy of the agent; that pays against
a model server that batches requests (llama.cpp's `--parallel`, vLLM), not against one
in-process model, whose callers take turns.

A task that raises (a server gone, a bug) is reported to `failed` and not written, so the next
run tries it again. A call that waits for approval is declined: there is no one to ask. This
module does not retry, and does not order the output (lines come in the order tasks finish).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any

from agent.api import unattended
from agent.workloads.jsonl import Appender, records


class BatchError(ValueError):
    """The tasks file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Task:
    """One line of a tasks file."""

    id: str
    """Its id, unique in the file (numbers are taken as their text)."""
    question: str
    """What the agent is asked."""
    line: int
    """Its line number, for messages."""


@dataclass(frozen=True)
class Progress:
    """Where a batch stands, after each finished task."""

    total: int
    """Tasks in the file."""
    skipped: int
    """Tasks already in the output when the run started."""
    answered: int
    """Tasks of this run that got an answer."""
    unanswered: int
    """Tasks of this run that ended without one (a budget ran out)."""
    failed: int
    """Tasks of this run that raised; they are not written, and the next run retries them."""
    seconds: float
    """Wall time of this run so far."""

    @property
    def done(self) -> int:
        """Tasks finished, this run and before."""
        return self.skipped + self.answered + self.unanswered

    def line(self) -> str:
        """A one-line summary for a terminal."""
        ran = self.answered + self.unanswered + self.failed
        rate = f", {ran / self.seconds * 60:.1f} tasks/min" if ran and self.seconds else ""
        left = self.total - self.done - self.failed
        eta = f", ~{left * self.seconds / ran:.0f}s left" if ran and left > 0 else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"[{self.done}/{self.total}] {self.answered} answered, {self.unanswered} without answer"
            f"{failed}, {self.skipped} skipped{rate}{eta}"
        )


def read_tasks(path: str | os.PathLike[str]) -> list[Task]:
    """The tasks of a JSONL file; `BatchError` names the line of the first problem."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise BatchError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(item, dict):
                raise BatchError(f'{where}: each line must be an object such as {{"id": 1, "question": "..."}}')
            if not isinstance(item.get("id"), str | int) or isinstance(item.get("id"), bool):
                raise BatchError(f'{where}: needs an "id" (a string or a whole number)')
            if not isinstance(item.get("question"), str) or not item["question"].strip():
                raise BatchError(f'{where}: needs a "question" (a non-empty string)')
            task_id = str(item["id"])
            if task_id in seen:
                raise BatchError(f"{where}: id {task_id!r} is already used on line {seen[task_id]}")
            seen[task_id] = number
            tasks.append(Task(task_id, item["question"], number))
    return tasks


def finished_ids(path: str | os.PathLike[str]) -> set[str]:
    """Ids already in an output file, after cutting off a torn last line."""
    return {str(r["id"]) for r in records(path) if "id" in r}


def run_batch(
    agent: Any,
    tasks_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    workers: int = 1,
    progress: Callable[[Progress], None] | None = None,
    failed: Callable[[Task, Exception], None] | None = None,
) -> Progress:
    """Answer every task not yet in `out_path`; returns the final `Progress`.

    `progress` hears after each finished task, `failed` of each task that raised.
    """
    tasks = read_tasks(tasks_path)
    done = finished_ids(out_path)
    todo = [t for t in tasks if t.id not in done]
    counts = {"answered": 0, "unanswered": 0, "failed": 0}
    began = time.monotonic()

    def status() -> Progress:
        return Progress(len(tasks), len(tasks) - len(todo), seconds=time.monotonic() - began, **counts)

    answer = unattended(agent)  # a copy of the agent per worker; approvals declined: nobody to ask

    def solve(task: Task) -> dict[str, Any]:
        started = time.monotonic()
        result = answer(task.question)
        return {
            "id": task.id,
            "question": task.question,
            "answer": result.answer,
            "stop_reason": result.stop_reason,
            "tool_calls": [asdict(c) for c in result.tool_calls],
            "stats": {k: v for k, v in result.usage.to_dict().items() if k != "per_step"},
            "seconds": round(time.monotonic() - started, 3),
        }

    out = Appender(out_path)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch")
    try:
        # At most `workers` tasks in flight: a kill loses only those, and they are simply rerun.
        queue = iter(todo)
        running: dict[Future[dict[str, Any]], Task] = {}
        while True:
            while len(running) < workers and (task := next(queue, None)) is not None:
                running[pool.submit(solve, task)] = task
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                try:
                    record = future.result()
                except Exception as exc:  # reported and retried next run; the batch goes on
                    counts["failed"] += 1
                    if failed is not None:
                        failed(task, exc)
                    continue
                out.write(record)
                counts["answered" if record["answer"] is not None else "unanswered"] += 1
                if progress is not None:
                    progress(status())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        out.close()
    return status()
