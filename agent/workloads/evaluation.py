"""Accuracy and cost of an agent on a math data set, the library behind `qwq-agent eval`.

`load_items` reads JSONL in the common shapes: GSM8K (`question`, `answer` ending in `#### 42`),
MATH/AIME/AMC (`problem` with `answer`, or only a `solution` with a `\\boxed{}`), any
question/answer pair with named columns, and Countdown instances (`numbers` and `target`, as
`agent.workloads.countdown` writes them, or TinyZero's `nums` and `target`). `evaluate` runs one
agent over the items and writes one JSON line per item as soon as it is graded (`ItemResult`),
so an interrupted run resumes where it stopped: items already in the output file under the same
configuration are skipped and counted from the file. `summarize` turns results into a
`Summary`: accuracy with a Wilson 95% interval, mean steps, tool calls, tokens and seconds per
item; `compare` pairs two summaries' items; `plot` draws them (matplotlib, the `plot` extra).

Grading is `agent.core.grading`, or the Countdown checker for Countdown items. This module does
not build agents nor print (`agent.cli.eval` does both), and runs episodes in parallel only on a
model that serves several at once (`parallel = True`: a model server, or an in-process model
loaded with `sequences` > 1); any other runs one episode at a time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.core.files import check_writable, write_atomically
from agent.core.grading import extract_answer, is_equivalent
from agent.workloads import countdown
from agent.workloads.jsonl import Appender, records

QUESTION_KEYS = ("question", "problem", "Question", "Problem", "prompt", "input")
ANSWER_KEYS = ("answer", "Answer", "final_answer", "target", "output", "expected_answer")
ID_KEYS = ("id", "unique_id", "ID", "Id", "problem_id", "idx")


@dataclass(frozen=True)
class Item:
    """One question of a data set and its reference answer."""

    id: str
    """Stable identity for resuming: the data set's id column, else the line number."""
    question: str
    """The text the agent is asked."""
    reference: str
    """The reference final answer (already extracted: `18`, not GSM8K's whole solution)."""
    numbers: tuple[int, ...] | None = None
    """Countdown: the numbers the answer may use, each at most once (the target is `reference`);
    None for an item graded by its reference answer."""


def countdown_item(instance: countdown.Instance) -> Item:
    """The item of a Countdown instance: graded by the checker, not against one reference answer."""
    question = countdown.question(instance.numbers, instance.target)
    return Item(instance.id, question, str(instance.target), instance.numbers)


@dataclass(frozen=True)
class ItemResult:
    """How one episode went: one JSON line of the results file."""

    id: str
    """The item's id."""
    config: str
    """Which configuration ran it ("base", or "compare" for `--compare`)."""
    prediction: str
    """The answer extracted from the agent's final text ("" when it gave none)."""
    reference: str
    """The reference answer."""
    correct: bool
    """Whether `prediction` is equivalent to `reference` (`agent.grading.is_equivalent`)."""
    answer: str | None = None
    """The agent's whole final answer text."""
    stop_reason: str = "answer"
    """Why the episode ended ("answer", or the budget that ran out)."""
    steps: int = 0
    """Reasoning steps."""
    tool_calls: int = 0
    """Tool calls made."""
    tool_errors: int = 0
    """Tool calls that failed."""
    invalid_calls: int = 0
    """Tool calls that did not parse or named no tool the agent has (of `tool_calls`)."""
    generated_tokens: int = 0
    """Tokens generated, reasoning included."""
    thinking_tokens: int = 0
    """Of which inside `<think>`."""
    prompt_evaluated: int = 0
    """Prompt tokens the model evaluated."""
    seconds: float = 0.0
    """Wall time of the episode."""
    error: str | None = None
    """An exception that ended the episode (a bug or a broken model), if any."""
    verdict: str | None = None
    """Countdown: why the checker accepted or refused the answer (`uses 8 twice (given once)`)."""


@dataclass(frozen=True)
class Summary:
    """Aggregate of one configuration's results."""

    config: str
    """The configuration's name."""
    n: int
    """Items graded."""
    correct: int
    """Items answered correctly."""
    accuracy: float
    """correct / n (0 when n is 0)."""
    ci_low: float
    """Lower end of the Wilson 95% interval of the accuracy."""
    ci_high: float
    """Upper end of it."""
    answered: float
    """Fraction of items with any answer."""
    mean_steps: float
    """Reasoning steps per item."""
    mean_tool_calls: float
    """Tool calls per item."""
    mean_generated_tokens: float
    """Generated tokens per item."""
    mean_prompt_evaluated: float
    """Prompt tokens evaluated per item."""
    mean_seconds: float
    """Wall time per item."""
    errors: int = 0
    """Episodes that ended with an exception."""
    calls: int = 0
    """Tool calls written, over all items."""
    call_validity: float = 1.0
    """Fraction of them that parsed and named a real tool (1 when there were none)."""


@dataclass(frozen=True)
class Comparison:
    """Two configurations on the same items."""

    base: Summary
    other: Summary
    n_paired: int
    """Items both configurations graded."""
    difference: float
    """other's accuracy minus base's, on the paired items."""
    only_base: int
    """Paired items only the base got right."""
    only_other: int
    """Paired items only the other got right."""


# ---------------------------------------------------------------------------------------------
# Data sets


def gsm8k_reference(solution: str) -> str:
    """GSM8K's final answer: what follows `####`, without thousands separators."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def load_items(
    path: str | Path,
    *,
    question_key: str | None = None,
    answer_key: str | None = None,
    id_key: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[Item]:
    """Items of a JSONL data set, lines `offset` to `offset + limit`.

    The shape is recognised per record unless keys are given: GSM8K (an answer with `####`),
    MATH-style (`problem` and `answer`, or a `solution` whose last `\\boxed{}` is the answer),
    or generic (`question`/`answer` and the aliases in `QUESTION_KEYS` and `ANSWER_KEYS`).
    Raises ValueError naming the line and its keys when a record fits no shape.
    """
    items: list[Item] = []
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f):
            if number < offset or not line.strip():
                continue
            if limit is not None and len(items) >= limit:
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number + 1}: not JSON ({exc.msg})") from None
            items.append(_item(record, number, path, question_key, answer_key, id_key))
    return items


def _item(
    record: Any, number: int, path: str | Path, question_key: str | None, answer_key: str | None, id_key: str | None
) -> Item:
    where = f"{path}:{number + 1}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object per line")
    instance = countdown.from_record(record)
    if instance is not None:
        item = countdown_item(instance)
        asked = record.get(question_key or "question")  # else the standard question (TinyZero's have none)
        ident = _pick(record, (id_key,) if id_key else ID_KEYS)
        question = asked if isinstance(asked, str) and asked.strip() else item.question
        return Item(str(ident) if ident is not None else item.id, question, item.reference, item.numbers)
    question = _pick(record, (question_key,) if question_key else QUESTION_KEYS)
    answer = _pick(record, (answer_key,) if answer_key else ANSWER_KEYS)
    if answer is None and answer_key is None and isinstance(record.get("solution"), str):
        answer = extract_answer(record["solution"])  # MATH: the answer is the solution's \boxed{}
    if question is None or answer is None:
        keys = ", ".join(record) or "none"
        raise ValueError(
            f"{where}: no question/answer columns (keys: {keys}); name them with --question-key and --answer-key"
        )
    reference = str(answer)
    if "####" in reference:
        reference = gsm8k_reference(reference)
    ident = _pick(record, (id_key,) if id_key else ID_KEYS)
    return Item(str(ident) if ident is not None else str(number), str(question), reference)


def _pick(record: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if record.get(key) is not None and str(record[key]).strip():
            return record[key]
    return None


# ---------------------------------------------------------------------------------------------
# Running


def grade(item: Item, result: Any, config: str, seconds: float, tools: Collection[str] | None = None) -> ItemResult:
    """The `ItemResult` of an episode's `agent.records.Result`; `tools` are the agent's tool names.

    A call that did not parse has no name; one naming no tool of `tools` is invalid too.
    """
    answer = result.answer
    verdict = None
    if item.numbers is not None:
        checked = countdown.grade(answer or "", item.numbers, int(item.reference))
        prediction, correct, verdict = checked.expression, checked.correct, checked.reason
    else:
        prediction = extract_answer(answer) if answer else ""
        correct = bool(prediction) and is_equivalent(prediction, item.reference)
    used = result.usage
    return ItemResult(
        id=item.id,
        config=config,
        prediction=prediction,
        reference=item.reference,
        correct=correct,
        answer=answer,
        stop_reason=result.stop_reason,
        steps=used.steps,
        tool_calls=len(result.tool_calls),
        tool_errors=sum(1 for c in result.tool_calls if c.error),
        invalid_calls=sum(1 for c in result.tool_calls if not c.name or (tools is not None and c.name not in tools)),
        generated_tokens=used.generated_tokens,
        thinking_tokens=used.thinking_tokens,
        prompt_evaluated=used.prompt_evaluated,
        seconds=round(seconds, 3),
        verdict=verdict,
    )


def read_results(path: str | Path) -> list[ItemResult]:
    """Results already in a results file; a line cut off by an interrupted run is dropped."""
    names = {f for f in ItemResult.__dataclass_fields__}
    return [
        ItemResult(**{k: v for k, v in record.items() if k in names})
        for record in records(path)
        if {"id", "config", "correct"} <= record.keys()
    ]


@dataclass
class Progress:
    """Callbacks for a progress display: `start(total, done, correct)`, then `advance(result)`."""

    start: Callable[[int, int, int], None] = lambda total, done, correct: None
    advance: Callable[[ItemResult], None] = lambda result: None
    finish: Callable[[], None] = lambda: None


def evaluate(
    items: Sequence[Item],
    run: Callable[[str], Any],
    *,
    config: str = "base",
    output: str | Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    tools: Collection[str] | None = None,
) -> list[ItemResult]:
    """Run `run(question) -> Result` over `items`; returns every item's result, old and new.

    `tools`, the agent's tool names, tell a valid call from one naming no real tool.

    With `output`, results are appended to that JSONL file as they come, and items it already
    holds for `config` are not run again. `workers` > 1 runs episodes in threads (only sensible
    when `run` is thread-safe, as for a served model); results are written in completion order.
    """
    import threading

    progress = progress or Progress()
    previous = {r.id: r for r in read_results(output) if r.config == config} if output else {}
    wanted = {item.id for item in items}
    done = [previous[i.id] for i in items if i.id in previous]
    todo = [item for item in items if item.id not in previous]
    progress.start(len(items), len(done), sum(r.correct for r in done))
    if output is not None and not Path(output).exists():
        check_writable(output)  # never a directory made silently
    out = Appender(output) if output is not None else None  # each result on disk at once: a kill loses none
    lock = threading.Lock()

    def one(item: Item) -> ItemResult:
        began = time.monotonic()
        try:
            result = grade(item, run(item.question), config, time.monotonic() - began, tools)
        except Exception as exc:  # one broken episode must not lose the rest of a long run
            result = ItemResult(item.id, config, "", item.reference, False, error=f"{type(exc).__name__}: {exc}")
        if out is not None:
            out.write(asdict(result))
        with lock:
            progress.advance(result)
        return result

    try:
        if workers > 1 and len(todo) > 1:
            with ThreadPoolExecutor(workers) as pool:
                new = list(pool.map(one, todo))
        else:
            new = [one(item) for item in todo]
    finally:
        if out is not None:
            out.close()
        progress.finish()
    by_id = {r.id: r for r in [*done, *new] if r.id in wanted}
    return [by_id[i.id] for i in items if i.id in by_id]


# ---------------------------------------------------------------------------------------------
# Summaries


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default); (0, 1) when n is 0.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n,
    which small evaluation runs hit often.
    """
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(results: Sequence[ItemResult], config: str = "base") -> Summary:
    """Accuracy with its interval, and mean cost per item."""
    n = len(results)
    correct = sum(r.correct for r in results)
    low, high = wilson_interval(correct, n)
    calls = sum(r.tool_calls for r in results)

    def mean(values: Iterator[float]) -> float:
        return round(sum(values) / n, 3) if n else 0.0

    return Summary(
        config=config,
        n=n,
        correct=correct,
        accuracy=round(correct / n, 4) if n else 0.0,
        ci_low=round(low, 4),
        ci_high=round(high, 4),
        answered=mean(float(bool(r.prediction)) for r in results),
        mean_steps=mean(r.steps for r in results),
        mean_tool_calls=mean(r.tool_calls for r in results),
        mean_generated_tokens=mean(r.generated_tokens for r in results),
        mean_prompt_evaluated=mean(r.prompt_evaluated for r in results),
        mean_seconds=mean(r.seconds for r in results),
        errors=sum(r.error is not None for r in results),
        calls=calls,
        call_validity=round(1 - sum(r.invalid_calls for r in results) / calls, 4) if calls else 1.0,
    )


def compare(base: Sequence[ItemResult], other: Sequence[ItemResult]) -> Comparison:
    """Two configurations' results paired by item id."""
    theirs = {r.id: r for r in other}
    paired = [(r, theirs[r.id]) for r in base if r.id in theirs]
    n = len(paired)
    a = sum(x.correct for x, _ in paired)
    b = sum(y.correct for _, y in paired)
    return Comparison(
        base=summarize(base, base[0].config if base else "base"),
        other=summarize(other, other[0].config if other else "compare"),
        n_paired=n,
        difference=round((b - a) / n, 4) if n else 0.0,
        only_base=sum(x.correct and not y.correct for x, y in paired),
        only_other=sum(y.correct and not x.correct for x, y in paired),
    )


def summary_json(summary: Summary, comparison: Comparison | None = None) -> dict[str, Any]:
    """The `--json` object: the base summary's fields at top level, the comparison under "compare"."""
    data = asdict(summary)
    if comparison is not None:
        data["compare"] = asdict(comparison.other) | {
            "n_paired": comparison.n_paired,
            "difference": comparison.difference,
            "only_base": comparison.only_base,
            "only_compare": comparison.only_other,
        }
    return data


def check_plot(path: str | Path) -> None:
    """Raise ValueError now, before a long run, if `plot` could not draw to `path` afterwards."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'qwq-agent[plot]'") from None
    check_writable(path)


def plot(summaries: Sequence[Summary], path: str | Path) -> None:
    """Accuracy (with its interval) and cost per item of each configuration, as a PNG.

    Needs matplotlib (`pip install 'qwq-agent[plot]'`); raises ValueError saying so otherwise.
    """
    check_plot(path)
    import io

    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    names = [s.config for s in summaries]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(10, 3.4))
    accuracy = [s.accuracy * 100 for s in summaries]
    errors = [
        [(s.accuracy - s.ci_low) * 100 for s in summaries],
        [(s.ci_high - s.accuracy) * 100 for s in summaries],
    ]
    left.bar(names, accuracy, yerr=errors, capsize=6, color="#4c72b0")
    left.set_ylim(0, 100)
    left.set_title("accuracy, % (95% CI)")
    middle.bar(names, [s.mean_generated_tokens for s in summaries], color="#dd8452")
    middle.set_title("generated tokens / item")
    right.bar(names, [s.mean_seconds for s in summaries], color="#55a868")
    right.set_title("seconds / item")
    for axis in (left, middle, right):
        axis.spines[["top", "right"]].set_visible(False)
    figure.suptitle(f"qwq-agent eval: {summaries[0].n} items")
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, dpi=120, format="png")
    plt.close(figure)
    write_atomically(path, image.getvalue())


def serves_in_parallel(model: Any) -> bool:
    """Whether episodes on `model` may run at once (a served model says so: `Model.parallel`)."""
    return bool(model.parallel)
