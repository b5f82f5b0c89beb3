"""`qwq-agent trace show FILE` replays a trace in the terminal; `trace html FILE` writes a page."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import options
from agent.cli.options import EXIT_ANSWERED


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `trace show` and `trace html`."""
    trace = commands.add_parser("trace", help="show a trace file, or write it as an HTML page")
    trace_commands = trace.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    show = trace_commands.add_parser("show", help="replay a trace in the terminal")
    show.add_argument("file", metavar="FILE.jsonl")
    show.add_argument("--hide-reasoning", action="store_true", help="do not show the model's reasoning")
    show.add_argument("--collapse-reasoning", action="store_true", help="one summary line per step's reasoning")
    show.set_defaults(run=show_command)
    page = trace_commands.add_parser("html", help="write one self-contained HTML page")
    page.add_argument("file", metavar="FILE.jsonl")
    page.add_argument("-o", "--output", metavar="PAGE.html", help="where to write it (default: FILE.html)")
    page.set_defaults(run=html_command)


def show_command(args: argparse.Namespace) -> int:
    """`qwq-agent trace show FILE`: replay a trace in the terminal."""
    from agent.ui.trace import load, replay

    trace = load(args.file)
    view = options.make_view(args)
    view.context_size = (trace.header.get("model") or {}).get("context_size")
    replay(trace, view)
    return EXIT_ANSWERED


def html_command(args: argparse.Namespace) -> int:
    """`qwq-agent trace html FILE -o PAGE.html`: one self-contained page."""
    from pathlib import Path

    from agent.core.files import check_writable, write_atomically
    from agent.ui.trace import load
    from agent.ui.trace_html import html

    output = check_writable(args.output or Path(args.file).with_suffix(".html"))
    write_atomically(output, html(load(args.file)))
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_ANSWERED
