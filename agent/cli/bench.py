"""`qwq-agent bench [--json] [--quick] [--model PATH]`: the benchmark table, measured here and now.

What is measured and how is the library `agent.workloads.bench`; this module logs progress and
prints the table (or `--json`).
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.options import gpu_layers, positive


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `bench` and its arguments."""
    bench = commands.add_parser("bench", help="measure speed and overheads side by side; --json for one object")
    bench.add_argument("--model", help="GGUF path or hub file (default: the embedded model)")
    bench.add_argument("--threads", type=positive, metavar="N", help="CPU threads (default: all cores)")
    bench.add_argument("--n-gpu-layers", type=gpu_layers, default=0, metavar="N", help="layers to offload to the GPU")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (for tests); figures are noisier")
    bench.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bench.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`qwq-agent bench [--json] [--quick] [--model PATH]`."""
    import json

    from rich.console import Console

    from agent.cli.options import default_tool_names
    from agent.workloads.bench import run as measure

    console = Console(stderr=True)
    report = measure(
        args.model,
        quick=args.quick,
        threads=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        log=lambda message: console.print(f"[dim]{message}[/dim]"),
        tools=default_tool_names(),  # the grammar a user's `solve` pays for
    )
    if args.json:
        console.print(table(report))
        print(json.dumps(report.to_json()))
    else:
        Console().print(table(report))
    return 0


def table(report: Any) -> Any:
    """A rich Table: key, measured, target, verdict, meaning."""
    from rich.table import Table

    from agent.workloads.bench import TARGETS, verdict

    out = Table(title="qwq-agent bench", title_justify="left")
    for column, justify in (
        ("key", "left"),
        ("measured", "right"),
        ("target", "right"),
        ("", "left"),
        ("what", "left"),
    ):
        out.add_column(column, justify=justify)  # type: ignore[arg-type]
    for key, (op, target, what) in TARGETS.items():
        value = report.figures[key]
        shown = "–" if value is None else f"{value:g}"
        aim = "report" if target is None else f"{op} {target:g}"
        mark = verdict(key, value)
        style = {"ok": "green", "MISS": "bold red"}.get(mark, "")
        out.add_row(key, shown, aim, f"[{style}]{mark}[/{style}]" if style else mark, report.notes.get(key, what))
    return out
