"""The `qwq-agent` command line: `main(argv)` dispatches to one module per command.

`qwq-agent = "agent.cli:main"` and `python -m agent.cli` both land in `agent.cli.main`. Nothing
heavy is imported until a command runs, so `--help` is instant.
"""

from agent.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
