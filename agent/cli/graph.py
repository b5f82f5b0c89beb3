"""`qwq-agent graph [-o FILE]`: the agent's state machine, as Mermaid text or an image."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli.options import EXIT_ANSWERED


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `graph`."""
    graph = commands.add_parser("graph", help="draw the agent's state machine (Mermaid, or an image with -o)")
    graph.add_argument(
        "-o", "--output", metavar="FILE", help="write FILE.png or .svg (needs Graphviz's dot), .dot or .mmd"
    )
    graph.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """`qwq-agent graph [-o FILE]`: the compiled state machine, drawn by LangGraph."""
    from agent.ui.drawing import draw

    text = draw(args.output)
    if text is not None:
        print(text, end="")
    else:
        print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_ANSWERED
