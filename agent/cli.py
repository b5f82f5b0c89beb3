"""The `qwq-agent` command: `solve` one question, or `chat` across several.

Reasoning streams dimmed on stderr with the tool calls and observations; the answer goes to
stdout (or the whole `Result` as JSON with `--json`). Exit codes: 0 answered, 1 no answer within
the budgets, 2 bad usage or input. Heavy modules load only once a command runs, so `--help` is
instant.

This module only parses arguments and prints; the agent itself lives in `agent.api`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.api import Agent
    from agent.records import Event

EXIT_ANSWERED, EXIT_NO_ANSWER, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from agent.model import ModelError

        if isinstance(exc, ModelError | ValueError):
            print(f"qwq-agent: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy imports)."""
    parser = argparse.ArgumentParser(prog="qwq-agent", description="A tool-using agent on a local reasoning model.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("model and budgets")
    group.add_argument(
        "--model", help="GGUF path, hub file (Qwen/QwQ-32B-GGUF[:Q4_K_M]) or omit for the embedded model"
    )
    group.add_argument(
        "--n-gpu-layers", type=int, default=0, metavar="N", help="layers to offload to the GPU (-1: all)"
    )
    group.add_argument("--ctx", type=positive, default=8192, metavar="TOKENS", help="context size (default 8192)")
    group.add_argument("--threads", type=positive, metavar="N", help="CPU threads (default: all cores)")
    group.add_argument("--seed", type=int, help="sampling seed, for reproducible runs")
    group.add_argument("--max-steps", type=positive, default=8, metavar="N", help="reasoning steps (default 8)")
    group.add_argument("--max-tokens", type=positive, default=4096, metavar="N", help="tokens generated per question")
    group.add_argument("--max-seconds", type=float, metavar="S", help="wall time per question")
    group.add_argument(
        "--tool-choice",
        metavar="CHOICE",
        help="auto, required, none, or a tool name (default: auto for reasoning models, required for instruct models)",
    )
    group.add_argument(
        "--thinking",
        choices=("auto", "on", "off"),
        default="auto",
        help="whether the model reasons in <think> (default: from its chat template)",
    )
    group.add_argument(
        "--tools",
        metavar="LIST",
        help="comma-separated built-in tools, or 'none' (default: calculator,python,web_search,read_page)",
    )
    group.add_argument("--no-search", action="store_true", help="leave out web_search")
    group.add_argument("--offline", action="store_true", help="leave out every tool that goes online")
    common.add_argument("--hide-reasoning", action="store_true", help="do not show the model's reasoning")

    solve = commands.add_parser("solve", parents=[common], help="answer one question")
    solve.add_argument("question", help="the question, in quotes")
    solve.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    solve.set_defaults(run=solve_command)

    chat = commands.add_parser("chat", parents=[common], help="an interactive conversation")
    chat.set_defaults(run=chat_command)
    return parser


def positive(text: str) -> int:
    """An argparse type: a whole number above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above zero: {text}")
    return value


def make_agent(args: argparse.Namespace) -> Agent:
    """The agent the command-line options describe."""
    from agent.api import Agent
    from tools import BUILTIN, NETWORK, default_tools

    names = list(BUILTIN) if args.tools is None else [n.strip() for n in args.tools.split(",") if n.strip()]
    names = [
        n
        for n in names
        if n != "none" and not (args.no_search and n == "web_search") and not (args.offline and n in NETWORK)
    ]
    return Agent(
        args.model,
        default_tools(names),
        tool_choice=args.tool_choice,
        max_steps=args.max_steps,
        max_tokens=args.max_tokens,
        max_seconds=args.max_seconds,
        context_size=args.ctx,
        n_gpu_layers=args.n_gpu_layers,
        threads=args.threads,
        seed=args.seed,
        thinking={"auto": None, "on": True, "off": False}[args.thinking],
    )


def solve_command(args: argparse.Namespace) -> int:
    """`qwq-agent solve QUESTION`."""
    agent = make_agent(args)
    # On a terminal the answer is printed on stdout at the end; stream it only when stdout is piped.
    view = View(sys.stderr, show_reasoning=not args.hide_reasoning, show_answer=not sys.stdout.isatty())
    result = None
    for event in agent.stream(args.question):
        result = view.show(event) or result
    assert result is not None
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif result.answer is not None:
        print(result.answer)
    else:
        print(f"qwq-agent: no answer ({result.stop_reason} budget reached)", file=sys.stderr)
    return EXIT_ANSWERED if result.answer is not None else EXIT_NO_ANSWER


def chat_command(args: argparse.Namespace) -> int:
    """`qwq-agent chat`: questions from the prompt until /quit or end of input."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    chat = make_agent(args).chat()
    view = View(sys.stderr, show_reasoning=not args.hide_reasoning)
    print("qwq-agent chat: /reset forgets the conversation, /quit leaves; Ctrl-C stops an answer.", file=sys.stderr)
    prompt = "you> " if sys.stdin.isatty() else ""  # piped input gets answers only on stdout
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            return EXIT_ANSWERED
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        if line in ("/quit", "/exit"):
            return EXIT_ANSWERED
        if line == "/reset":
            chat.reset()
            print("(conversation reset)", file=sys.stderr)
            continue
        if not line:
            continue
        try:
            for event in chat.stream(line):
                result = view.show(event)
                if result is not None:
                    print(result.answer if result.answer is not None else f"(no answer: {result.stop_reason})")
        except KeyboardInterrupt:
            print("\n(stopped; the conversation is as it was before this question)", file=sys.stderr)


class View:
    """Prints events for a person: dim reasoning, tool calls and observations."""

    def __init__(self, out: IO[str], *, show_reasoning: bool = True, show_answer: bool = True) -> None:
        self.out = out
        self.show_reasoning = show_reasoning
        self.show_answer = show_answer
        self.fresh_line = True
        color = out.isatty() and "NO_COLOR" not in os.environ
        self.dim, self.bold, self.reset = ("\033[2m", "\033[1m", "\033[0m") if color else ("", "", "")

    def show(self, event: Event) -> Any:
        """Print one event; returns the `Result` when the event is the final one."""
        from agent import records

        match event:
            case records.ReasoningText(text) if self.show_reasoning:
                self.write(self.dim + text + self.reset)
            case records.AnswerText(text) if self.show_answer:
                self.write(text)
            case records.ToolCallStarted(name, arguments):
                self.line(f"{self.bold}→ {name}{self.reset} {json.dumps(arguments, ensure_ascii=False)}")
            case records.Observation(call):
                mark = "✗" if call.error else "←"
                self.line(f"{self.bold}{mark}{self.reset} {call.output}  {self.dim}({call.seconds:.2f}s){self.reset}")
            case records.StepFinished():
                self.line("")
            case records.Final(result):
                return result
        return None

    def write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.fresh_line = text.endswith("\n")

    def line(self, text: str) -> None:
        """Write `text` on a line of its own."""
        self.write(("" if self.fresh_line else "\n") + text + ("\n" if text else ""))


if __name__ == "__main__":
    sys.exit(main())
