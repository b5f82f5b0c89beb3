"""What every agent command shares: its options, the agent and the view they describe, exit codes.

`common_options()` is the parent parser of `solve`, `chat`, `eval`, `run`, `batch` and
`sessions`; `make_agent(args)` builds the `Agent` those options describe, and `make_view(args)`
the terminal view. Heavy modules are imported inside the functions that need them.

This module parses and builds; it runs no episode.
"""

from __future__ import annotations

import argparse
import os
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
    """The options of every command that runs the agent: model, tools, the agent's settings, view.

    The agent's options are derived from the fields of `agent.core.settings` that carry an
    `option(...)`: their flags, help and bounds are not written here a second time.
    """
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("model and tools")
    group.add_argument(
        "--model",
        help="GGUF path, hub file (Qwen/QwQ-32B-GGUF[:Q4_K_M], modelscope:Qwen/QwQ-32B-GGUF), a server"
        " (openai:URL[,URL...] or openai:FILE of URLs), or none: embedded",
    )
    group.add_argument(
        "--n-gpu-layers", type=int, default=0, metavar="N", help="layers to offload to the GPU (-1: all)"
    )
    group.add_argument("--ctx", type=positive, default=8192, metavar="TOKENS", help="context size (default 8192)")
    group.add_argument("--threads", type=positive, metavar="N", help="CPU threads (default: all cores)")
    group.add_argument("--seed", type=int, help="sampling seed, for reproducible runs")
    group.add_argument(
        "--tools",
        metavar="LIST",
        help="comma-separated built-in tools, or 'none' (default: calculator,python,web_search,read_page)",
    )
    group.add_argument("--no-search", action="store_true", help="leave out web_search")
    group.add_argument("--offline", action="store_true", help="leave out every tool that goes online")
    add_settings_options(common.add_argument_group("agent options (budgets, reasoning controls, approval)"))
    served = common.add_argument_group("sessions and model servers")
    served.add_argument("--session", metavar="NAME", help="keep the conversation in a durable session ($QWQ_SESSIONS)")
    served.add_argument("--api-key", metavar="KEY", help="API key of an openai:URL server (default: $OPENAI_API_KEY)")
    served.add_argument("--model-name", metavar="NAME", help="model name to request from an openai:URL server")
    served.add_argument(
        "--api",
        choices=("auto", "tokens", "completions", "chat"),
        default="auto",
        help="how to speak to an openai:URL server: llama.cpp's tokens, /v1/completions, /v1/chat/completions"
        " (default auto: tokens with llama-server, else completions)",
    )
    common.add_argument("--hide-reasoning", action="store_true", help="do not show the model's reasoning")
    common.add_argument(
        "--collapse-reasoning", action="store_true", help="show only a live tail of the reasoning, then a summary"
    )
    common.add_argument("--trace", metavar="FILE.jsonl", help="write every event, with timings and tokens, to FILE")
    return common


def add_settings_options(group: Any) -> None:
    """One flag per option of `Settings`, `Budget` and `Controls` that offers one.

    A flag not given leaves its option out of the namespace (`given_options`), so defaults live
    only in the dataclasses.
    """
    from agent.core.settings import OPTIONS

    for option in OPTIONS.values():
        cli = option.cli
        if cli is None:
            continue
        flag = cli["flag"] or "--" + option.name.replace("_", "-")
        default = f" (default {option.default})" if isinstance(option.default, int) and option.default else ""
        spec: dict[str, Any] = {"dest": option.name, "default": argparse.SUPPRESS, "help": cli["help"] + default}
        if cli["choices"] or (option.words and str not in option.types):
            spec["choices"] = list(cli["choices"] or option.words)
        elif option.types == (bool,):
            spec["action"] = "store_true"
        elif bool in option.types:  # a flag alone, or its text
            spec |= {"nargs": "?", "const": True, "metavar": cli["metavar"]}
        else:
            number = float if float in option.types else int if int in option.types else str
            spec |= {"metavar": cli["metavar"], "type": positive if cli["positive"] and number is int else number}
        group.add_argument(flag, **spec)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The agent options given on the command line, as the values they stand for."""
    from agent.core.settings import OPTIONS

    given = {}
    for name, option in OPTIONS.items():
        if hasattr(args, name):
            choices = (option.cli or {}).get("choices")
            value = getattr(args, name)
            given[name] = choices[value] if choices else value
    return given


def positive(text: str) -> int:
    """An argparse type: a whole number above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above zero: {text}")
    return value


def make_agent(args: argparse.Namespace) -> Agent:
    """The agent the command-line options describe."""
    from agent.api import Agent
    from agent.sessions import open_sessions
    from tools import BUILTIN, NETWORK, default_tools

    names = list(BUILTIN) if args.tools is None else [n.strip() for n in args.tools.split(",") if n.strip()]
    names = [
        n
        for n in names
        if n != "none" and not (args.no_search and n == "web_search") and not (args.offline and n in NETWORK)
    ]
    options = given_options(args)
    model: Any = args.model
    if model and model.startswith("openai:"):
        from agent.models.servers import connect

        model = connect(
            model.removeprefix("openai:"),
            api=getattr(args, "api", "auto"),
            api_key=args.api_key,
            model_name=args.model_name,
            context_size=args.ctx,
            seed=args.seed,
            thinking=options.get("reasoning"),
        )
    else:
        options |= {"context_size": args.ctx, "n_gpu_layers": args.n_gpu_layers, "threads": args.threads}
        options |= {"seed": args.seed}
    if model is None or isinstance(model, str):  # a local model: loading it takes seconds
        _status("loading model…")
    checkpointer = open_sessions() if getattr(args, "session", None) else None
    agent = Agent(model, default_tools(names), checkpointer=checkpointer, **options)
    from agent.cli.interrupt import cancel_on_interrupt

    cancel_on_interrupt(agent.model)
    if getattr(args, "trace", None):
        from agent.ui.trace import tracer_for

        tracer_for(args.trace, command=args.command).attach(agent)
    return agent


def _status(text: str) -> None:
    """A status line on a terminal's stderr while nothing else shows (loading a model takes a while)."""
    if not sys.stderr.isatty():
        return
    if os.environ.get("NO_COLOR"):  # plain text: no cursor control, one line of its own
        print(text, file=sys.stderr, flush=True)
    else:
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
