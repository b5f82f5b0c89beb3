"""`qwq-agent eval DATASET` or `eval --task countdown`: accuracy and cost, with a progress bar.

A task family is generated rather than read: `--task countdown --n 100 --seed 0` draws 100
solvable Countdown instances (`--numbers`, `--number-range`, `--target-range` set how hard), and
`--write-data FILE.jsonl` writes them for `eval FILE.jsonl` (or anything else) instead of running.

The evaluation itself (items, grading, resumable results, summaries) is the library
`agent.workloads.evaluation`; this module builds the agents from the options, shows progress and
the summary table, and prints `--json`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from agent.cli import options
from agent.cli.options import not_negative, positive
from agent.workloads.evaluation import Comparison, ItemResult, Progress, Summary


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `eval` and its arguments."""
    evaluation = commands.add_parser(
        "eval", parents=[common], help="accuracy and cost on a JSONL math data set, or a generated task"
    )
    evaluation.add_argument(
        "dataset", nargs="?", help="JSONL: GSM8K, MATH/AIME/AMC (problem, answer), question/answer, or Countdown"
    )
    task = evaluation.add_argument_group("generated task (instead of a DATASET)")
    task.add_argument("--task", choices=("countdown",), help="countdown: numbers and a target (TinyZero's task)")
    task.add_argument("--n", type=positive, default=100, metavar="N", help="instances to generate (default 100)")
    task.add_argument("--numbers", type=positive, default=4, metavar="K", help="numbers per instance (default 4)")
    task.add_argument(
        "--number-range", type=span, default=(1, 99), metavar="LO-HI", help="the numbers' range (default 1-99)"
    )
    task.add_argument(
        "--target-range", type=span, default=(10, 100), metavar="LO-HI", help="the targets' range (default 10-100)"
    )
    task.add_argument("--write-data", metavar="FILE.jsonl", help="write the instances to FILE and stop (no model)")
    evaluation.add_argument("--limit", type=positive, metavar="N", help="items to run (default: all)")
    evaluation.add_argument("--offset", type=not_negative, default=0, metavar="N", help="lines to skip first")
    evaluation.add_argument("--question-key", metavar="KEY", help="column of the question (default: guessed)")
    evaluation.add_argument("--answer-key", metavar="KEY", help="column of the reference answer (default: guessed)")
    evaluation.add_argument("--id-key", metavar="KEY", help="column of the item id (default: id, else line number)")
    evaluation.add_argument("-o", "--output", metavar="FILE", help="results JSONL, one line per item; reruns resume")
    evaluation.add_argument(
        "--workers", type=positive, default=1, metavar="N", help="episodes at once, decoded together"
    )
    evaluation.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    evaluation.add_argument(
        "--compare", metavar="OPTIONS", help='a second configuration, e.g. --compare="--tools none"'
    )
    evaluation.add_argument("--plot", metavar="FILE.png", help="draw accuracy and cost (needs matplotlib)")
    evaluation.set_defaults(run=run, tools="calculator,python", hide_reasoning=True)
    for action in evaluation._actions:  # its own default, not the one the shared option states
        if action.dest == "tools":
            action.help = "comma-separated built-in tools, or 'none' (default: calculator,python)"


def run(args: argparse.Namespace) -> int:
    """`qwq-agent eval DATASET`: run, write, resume, summarize."""
    import sys

    from rich.console import Console

    from agent.api import unattended
    from agent.workloads.evaluation import (
        check_plot,
        compare,
        countdown_item,
        evaluate,
        load_items,
        plot,
        serves_in_parallel,
        summarize,
        summary_json,
    )

    if (args.dataset is None) == (args.task is None):
        raise ValueError("eval needs a DATASET file or a --task to generate, and not both")
    if args.write_data and args.task is None:
        raise ValueError("--write-data writes a generated --task")
    if args.plot:
        check_plot(args.plot)  # before the run, not after an hour of it
    console = Console(stderr=True)
    if args.task is not None:
        instances = generate_task(args)
        if args.write_data:
            write_data(instances, args.write_data)
            console.print(f"wrote {len(instances)} {args.task} instances to {args.write_data}")
            return 0
        items = [countdown_item(i) for i in instances][args.offset :][: args.limit]
    else:
        items = load_items(
            args.dataset,
            question_key=args.question_key,
            answer_key=args.answer_key,
            id_key=args.id_key,
            offset=args.offset,
            limit=args.limit,
        )
    if not items:
        raise ValueError(f"no items in {args.dataset or args.task} from item {args.offset + 1}")
    configs = [("base", args)]
    if args.compare is not None:
        configs.append(("compare", compare_args(args)))
    everything: dict[str, list[ItemResult]] = {}
    for name, config_args in configs:
        agent = options.make_agent(config_args)
        workers = args.workers
        if workers > 1 and not serves_in_parallel(agent.model):
            console.print(
                f"[yellow]--workers {workers}: this model serves one episode at a time; running serially[/yellow]"
            )
            workers = 1
        label = f"{name}: {agent.model.name}" if len(configs) > 1 else agent.model.name
        with _rich_progress(console, label) as progress:
            everything[name] = evaluate(
                items,
                unattended(agent),
                config=name,
                output=args.output,
                workers=workers,
                progress=progress,
                tools=list(agent.tools),
            )
        del agent  # free the model before the next configuration loads its own
    base = summarize(everything["base"], "base")
    comparison = compare(everything["base"], everything["compare"]) if "compare" in everything else None
    summaries = [base] + ([comparison.other] if comparison else [])
    table = summary_table(summaries, comparison)
    if args.json:
        console.print(table)
        print(json.dumps(summary_json(base, comparison)))
    else:
        Console().print(table)
    if args.plot:
        plot(summaries, args.plot)
        console.print(f"plot written to {args.plot}")
    sys.stdout.flush()
    return 0


def generate_task(args: argparse.Namespace) -> list[Any]:
    """The instances `--task` and its knobs ask for; the seed is `--seed` (0 without one)."""
    from agent.workloads import countdown

    low, high = args.number_range
    seed = 0 if args.seed is None else args.seed
    return countdown.generate(args.n, seed, count=args.numbers, low=low, high=high, targets=args.target_range)


def write_data(instances: Sequence[Any], path: str) -> None:
    """One JSON line per instance (`countdown.to_record`): a data set `eval FILE` reads back."""
    from pathlib import Path

    from agent.workloads import countdown

    lines = [json.dumps(countdown.to_record(i), ensure_ascii=False) for i in instances]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def span(text: str) -> tuple[int, int]:
    """An argparse type: `LO-HI`, two whole numbers with LO <= HI."""
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit() or int(low) > int(high):
        raise argparse.ArgumentTypeError(f"expected LO-HI with LO <= HI, such as 1-99: {text}")
    return int(low), int(high)


def summary_table(summaries: Sequence[Summary], comparison: Comparison | None = None) -> Any:
    """A rich Table of the summaries, one column per configuration."""
    from rich.table import Table

    table = Table(title="evaluation", title_justify="left")
    table.add_column("")
    for s in summaries:
        table.add_column(s.config, justify="right")
    rows: list[tuple[str, Callable[[Summary], str]]] = [
        ("items", lambda s: str(s.n)),
        ("correct", lambda s: str(s.correct)),
        ("accuracy", lambda s: f"{s.accuracy:.1%}"),
        ("95% CI (Wilson)", lambda s: f"{s.ci_low:.1%} – {s.ci_high:.1%}"),
        ("answered", lambda s: f"{s.answered:.0%}"),
        ("steps / item", lambda s: f"{s.mean_steps:.2f}"),
        ("tool calls / item", lambda s: f"{s.mean_tool_calls:.2f}"),
        ("valid calls", lambda s: f"{s.call_validity:.0%} of {s.calls}"),
        ("generated tokens / item", lambda s: f"{s.mean_generated_tokens:.0f}"),
        ("prompt tokens evaluated / item", lambda s: f"{s.mean_prompt_evaluated:.0f}"),
        ("seconds / item", lambda s: f"{s.mean_seconds:.2f}"),
        ("errors", lambda s: str(s.errors)),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(s) for s in summaries))
    if comparison is not None:
        table.caption = (
            f"difference (compare - base) on {comparison.n_paired} paired items: "
            f"{comparison.difference:+.1%}; only base right: {comparison.only_base}, "
            f"only compare right: {comparison.only_other}"
        )
    return table


def compare_args(args: Any) -> Any:
    """The base options with those of `--compare "OPTIONS"` laid over them."""
    import shlex

    parser = options.Parser(prog="qwq-agent --compare")
    add(parser.add_subparsers(dest="command"), options.common_options())
    base = ["eval", *([args.dataset] if args.dataset else [])]
    defaults = parser.parse_args(base)
    overrides = parser.parse_args([*base, *shlex.split(args.compare)])
    merged = argparse.Namespace(**vars(args))
    for key, value in vars(overrides).items():
        if value != getattr(defaults, key, None):
            setattr(merged, key, value)
    return merged


def time_left(seconds: float, done_here: int, left: int) -> str:
    """The time the `left` items will take at the pace of the `done_here` run so far in `seconds`
    (rich's own column waits for several samples: nothing after the first item)."""
    if left <= 0:
        return "0:00:00"
    if done_here <= 0:
        return "-:--:--"
    whole = round(seconds / done_here * left)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class _rich_progress:
    """A rich progress bar on stderr: items done, accuracy so far, time left."""

    def __init__(self, console: Any, label: str, clock: Callable[[], float] | None = None) -> None:
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("accuracy {task.fields[accuracy]}"),
            TextColumn("[cyan]{task.fields[left]} left"),
            console=console,
            transient=False,
        )
        self.label = label
        self.clock = clock or time.monotonic
        self.done = self.correct = self.total = self.here = 0
        self.began = 0.0
        self.task: Any = None

    def __enter__(self) -> Progress:
        self.bar.start()

        def start(total: int, done: int, correct: int) -> None:
            self.done, self.correct, self.total, self.began = done, correct, total, self.clock()
            left = time_left(0, 0, total - done)
            self.task = self.bar.add_task(self.label, total=total, completed=done, accuracy=self._accuracy(), left=left)

        def advance(result: ItemResult) -> None:
            self.done += 1
            self.here += 1  # items resumed from the output file took no time in this run
            self.correct += result.correct
            left = time_left(self.clock() - self.began, self.here, self.total - self.done)
            self.bar.update(self.task, advance=1, accuracy=self._accuracy(), left=left)

        return Progress(start, advance, lambda: None)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def _accuracy(self) -> str:
        return f"{self.correct / self.done:.1%}" if self.done else "–"
