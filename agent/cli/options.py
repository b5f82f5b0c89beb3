"""What every agent command shares: its options, the agent and the view they describe, exit codes.

`common_options()` is the parent parser of `solve`, `chat`, `eval`, `run`, `batch` and
`sessions`; `make_agent(args)` builds the `Agent` those options describe, and `make_view(args)`
the terminal view. Heavy modules are imported inside the functions that need them.

This module parses and builds; it runs no episode.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.api import Agent
    from agent.ui.view import View

EXIT_ANSWERED, EXIT_NO_ANSWER, EXIT_USAGE = 0, 1, 2
EXIT_WAITING = 3
"""A call waits for approval: `qwq-agent sessions resume NAME --yes` (or --no) continues."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report a SIGINT."""


def common_options() -> argparse.ArgumentParser:
    """The options of every command that runs the agent: model, budgets, controls, sessions, view."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("model and budgets")
    group.add_argument(
        "--model",
        help="GGUF path, hub file (Qwen/QwQ-32B-GGUF[:Q4_K_M], modelscope:Qwen/QwQ-32B-GGUF), or none: embedded",
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
    controls = common.add_argument_group("reasoning controls")
    controls.add_argument("--thinking-budget", type=positive, metavar="N", help="thinking tokens per question")
    controls.add_argument("--step-thinking-budget", type=positive, metavar="N", help="thinking tokens per step")
    controls.add_argument(
        "--min-thinking", type=int, default=0, metavar="N", help='extend shorter thoughts with "Wait"'
    )
    controls.add_argument(
        "--hint",
        nargs="?",
        const=True,
        default=False,
        metavar="TEXT",
        help="write a tool hint into the thought on heavy arithmetic (START)",
    )
    controls.add_argument(
        "--hint-after", type=positive, metavar="N", help="hint after N thinking tokens without a tool"
    )
    controls.add_argument(
        "--calls-in-reasoning",
        choices=("execute", "ignore"),
        help="what a tool call inside the thought does (default: as the model's template expects)",
    )
    controls.add_argument("--verify", action="store_true", help="have the agent check its answer with the tools")
    controls.add_argument("--samples", type=positive, default=1, metavar="K", help="majority answer of K episodes")
    served = common.add_argument_group("sessions, approval and model servers")
    served.add_argument("--session", metavar="NAME", help="keep the conversation in a durable session ($QWQ_SESSIONS)")
    served.add_argument(
        "--approve",
        choices=("auto", "always", "never"),
        default="auto",
        help="when a person approves calls: auto (marked tools; code after web text), always (also all code), never",
    )
    served.add_argument("--api-key", metavar="KEY", help="API key of an openai:URL server (default: $OPENAI_API_KEY)")
    served.add_argument("--model-name", metavar="NAME", help="model name to request from an openai:URL server")
    common.add_argument("--hide-reasoning", action="store_true", help="do not show the model's reasoning")
    common.add_argument(
        "--collapse-reasoning", action="store_true", help="show only a live tail of the reasoning, then a summary"
    )
    common.add_argument("--trace", metavar="FILE.jsonl", help="write every event, with timings and tokens, to FILE")
    return common


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
    from agent.sessions import open_sessions

    model: Any = args.model
    if model and model.startswith("openai:"):
        from agent.models.openai import OpenAIModel

        model = OpenAIModel(
            model.removeprefix("openai:"),
            api_key=args.api_key,
            model_name=args.model_name,
            context_size=args.ctx,
            seed=args.seed,
            thinking={"auto": None, "on": True, "off": False}[args.thinking],
        )
    if model is None or isinstance(model, str):  # a local model: loading it takes seconds
        _status("loading model…")
    agent = Agent(
        model,
        default_tools(names),
        tool_choice=args.tool_choice,
        max_steps=args.max_steps,
        max_tokens=args.max_tokens,
        max_seconds=args.max_seconds,
        context_size=args.ctx,
        n_gpu_layers=args.n_gpu_layers,
        threads=args.threads,
        seed=args.seed,
        reasoning="auto" if args.thinking == "auto" else args.thinking == "on",
        thinking_budget=args.thinking_budget,
        step_thinking_budget=args.step_thinking_budget,
        min_thinking=args.min_thinking,
        hint=args.hint,
        hint_after=args.hint_after,
        calls_in_reasoning=args.calls_in_reasoning,
        verify=args.verify,
        samples=args.samples,
        checkpointer=open_sessions() if getattr(args, "session", None) else None,
        approval=getattr(args, "approve", "auto"),
    )
    from agent.cli.interrupt import cancel_on_interrupt

    cancel_on_interrupt(agent.model)
    if getattr(args, "trace", None):
        from agent.ui.trace import tracer_for

        tracer_for(args.trace, command=args.command).attach(agent)
    return agent


def _status(text: str) -> None:
    """A status line on a terminal's stderr while nothing else shows (loading a model takes a while)."""
    if sys.stderr.isatty():
        print(f"\r\033[2K{text}", end="\r", file=sys.stderr, flush=True)


def make_view(args: argparse.Namespace, agent: Agent | None = None, *, show_answer: bool = True) -> View:
    """The terminal view the options ask for, on stderr (stdout is kept for answers)."""
    from agent.ui.view import View

    return View(
        sys.stderr,
        show_reasoning=not args.hide_reasoning,
        collapse_reasoning=getattr(args, "collapse_reasoning", False),
        show_answer=show_answer,
        context_size=getattr(getattr(agent, "model", None), "context_size", None),
    )
