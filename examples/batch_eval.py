"""A small batch evaluation: run the agent on questions with known answers and grade it.

    python examples/batch_eval.py [RESULTS.jsonl]

Each task is answered in its own episode; the answer's last number is compared with the
expected one. A progress bar shows how far it got (on a terminal), one JSON line per task is
written as it finishes, and a summary reports accuracy, tool use and tokens. For real
evaluations use `qwq-agent eval` (GSM8K, resumable); this shows the moving parts in a page.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agent import Agent
from tools import default_tools

TASKS = [
    {"id": "mul-add", "question": "What is 37 * 89 + 12?", "expected": 3305},
    {"id": "power", "question": "What is 2^10 - 24?", "expected": 1000},
    {"id": "sum", "question": "What is 1234 + 4321?", "expected": 5555},
]


def last_number(text: str | None) -> float | None:
    """The last number in an answer ("The answer is 3,305." -> 3305.0), or None."""
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text or "")
    return float(found[-1].replace(",", "")) if found else None


output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "qwq-batch-example.jsonl"
agent = Agent(os.environ.get("QWQ_MODEL"), default_tools(["calculator"]), seed=0, context_size=4096)
console = Console(stderr=True)  # progress on stderr; plain when piped
rows = []
began = time.monotonic()
with (
    output.open("w") as results,
    Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress,
):
    bar = progress.add_task("evaluating", total=len(TASKS))
    for task in TASKS:
        result = agent.run(task["question"])
        correct = last_number(result.answer) == task["expected"]
        row = {
            "id": task["id"],
            "answer": result.answer,
            "expected": task["expected"],
            "correct": correct,
            "tool_calls": [c.name for c in result.tool_calls],
            "generated_tokens": result.usage.generated_tokens,
            "seconds": round(result.usage.time_total_s, 2),
        }
        results.write(json.dumps(row) + "\n")
        rows.append(row)
        progress.advance(bar)

for row in rows:
    print(f"{'✓' if row['correct'] else '✗'} {row['id']:<8} {row['answer']!r:<40} expected {row['expected']}")
right = sum(r["correct"] for r in rows)
used_tools = sum(bool(r["tool_calls"]) for r in rows)
print(
    f"accuracy {right}/{len(rows)} ({100 * right / len(rows):.0f}%), tools used in {used_tools}/{len(rows)}, "
    f"{sum(r['generated_tokens'] for r in rows)} tokens generated, {time.monotonic() - began:.1f} s; "
    f"results in {output}"
)
