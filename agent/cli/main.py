"""The `qwq-agent` command: parse the arguments and run the command they name.

Each command lives in a module of its own in `agent.cli` with two functions: `add(commands,
common)` declares its arguments, `run(args)` runs it and returns the exit code. Exit codes: 0
answered, 1 no answer within the budgets, 2 bad usage or input (one line on stderr), 3 a call
waits for approval. Command modules import their heavy parts inside `run`, so `--help` is instant.

This module only dispatches; the agent itself lives in `agent.api`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any

from agent.cli import batch, bench, chat, doctor, eval, graph, run, sessions, solve, trace
from agent.cli.options import EXIT_INTERRUPTED, EXIT_USAGE, Parser, common_options

COMMANDS = (solve, chat, trace, graph, doctor, eval, bench, run, batch, sessions)
"""The command modules, in the order `--help` lists them."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, whose --help lists what it takes
        parser.commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        import sqlite3

        from agent.models.protocol import ModelError

        if isinstance(exc, ModelError | ValueError):
            from agent.ui.terminal import printable

            print(printable(f"qwq-agent: error: {exc}"), file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, OSError):  # a missing input, a directory, a read-only or full disk
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"qwq-agent: error: {where}{exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, sqlite3.Error):  # a sessions database that is not one, or is read-only
            print(f"qwq-agent: error: sessions database: {exc} (see $QWQ_SESSIONS)", file=sys.stderr)
            return EXIT_USAGE
        raise


def build_parser() -> Parser:
    """The argument parser (no heavy imports)."""
    parser = Parser(prog="qwq-agent", description="A tool-using agent on a local reasoning model.")
    parser.add_argument("--version", action="version", version=f"qwq-agent {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_command = commands.add_parser

    def add_parser(name: str, **options: Any) -> argparse.ArgumentParser:
        # argparse shares a parent's option objects between its children, so one command's
        # set_defaults(...) would change every command's defaults: each gets its own copy.
        options["parents"] = [copy.deepcopy(p) for p in options.get("parents", ())]
        return add_command(name, **options)

    commands.add_parser = add_parser  # type: ignore[method-assign,assignment]
    parser.commands = commands.choices
    common = common_options()
    for command in COMMANDS:
        command.add(commands, common)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qwq-agent")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
