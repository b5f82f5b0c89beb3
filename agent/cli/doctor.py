"""`qwq-agent doctor`: check the installation; exit 0 when usable, 1 with the fixes."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import IO, Any

from agent.cli.options import positive


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `doctor`."""
    doctor = commands.add_parser("doctor", help="check that everything the agent needs is in place")
    doctor.add_argument("--model", help="the model to check (default: the embedded one)")
    doctor.add_argument("--ctx", type=positive, default=8192, metavar="TOKENS", help="context size to load it with")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`qwq-agent doctor`: check the installation; exit 0 when usable, 1 with the fixes."""
    from agent.workloads.doctor import run_checks

    checks = run_checks(model=args.model, context_size=args.ctx)
    return report(checks, sys.stdout, as_json=args.json)


def report(checks: list[Any], out: IO[str], *, as_json: bool = False) -> int:
    """Print the checks (JSON, a table on a colour terminal, plain lines otherwise); returns the exit code."""
    from agent.ui.view import use_color

    usable = all(c.status != "fail" for c in checks)
    if as_json:
        out.write(json.dumps({"usable": usable, "checks": [asdict(c) for c in checks]}, ensure_ascii=False) + "\n")
    elif use_color(out):
        from rich.console import Console
        from rich.table import Table

        marks = {"ok": "[green]✓ ok[/]", "warn": "[yellow]! warn[/]", "fail": "[red]✗ fail[/]"}
        table = Table(show_header=False, box=None, padding=(0, 1))
        for c in checks:
            table.add_row(
                marks[c.status], f"[bold]{c.name}[/]", c.detail + (f"\n[cyan]fix:[/] {c.fix}" if c.fix else "")
            )
        console = Console(file=out, highlight=False)
        console.print(table)
        console.print("[green]usable[/]" if usable else "[red]not usable: see the fixes above[/]")
    else:
        for c in checks:
            out.write(f"{ {'ok': '✓', 'warn': '!', 'fail': '✗'}[c.status] } {c.name}: {c.detail}\n")
            if c.fix:
                out.write(f"    fix: {c.fix}\n")
        out.write("usable\n" if usable else "not usable: see the fixes above\n")
    out.flush()
    return 0 if usable else 1
