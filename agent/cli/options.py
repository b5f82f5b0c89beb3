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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.api import Agent
    from agent.ui.view import View

EXIT_ANSWERED, EXIT_NO_ANSWER, EXIT_USAGE = 0, 1, 2
EXIT_WAITING = 3
"""A call waits for approval: `qwq-agent sessions resume NAME --yes` (or --no) continues."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report a SIGINT."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and a hint, and which takes no abbreviations.

    argparse would print the whole usage block, and would read `--api chat` as `--api-key chat`.
    Its sub-parsers (one per command) are of this class too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        self.commands: Mapping[str, argparse.ArgumentParser] = {}
        """The parsers of its commands, by name (the top-level parser's)."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(try: {self.prog} --help)\n")


def common_options() -> argparse.ArgumentParser:
    """The options of every command that runs the agent: model, tools, the agent's settings, view.

    The agent's options are derived from the fields of `agent.core.settings` that carry an
    `option(...)`: their flags, help and bounds are not written here a second time.
    """
    common = Parser(add_help=False)
    group = common.add_argument_group("model and tools")
    group.add_argument(
        "--model",
        help="GGUF path, hub file (Qwen/QwQ-32B-GGUF[:Q4_K_M], modelscope:Qwen/QwQ-32B-GGUF), a server"
        " (openai:URL[,URL...] or openai:FILE of URLs), or none: embedded",
    )
    group.add_argument(
        "--n-gpu-layers", type=gpu_layers, default=0, metavar="N", help="layers to offload to the GPU (-1: all)"
    )
    group.add_argument("--ctx", type=positive, default=8192, metavar="TOKENS", help="context size (default 8192)")
    group.add_argument(
        "--kv-cache",
        choices=("f16", "q8_0", "q4_0"),
        default="f16",
        help="KV cache data type: q8_0 about halves its memory (default f16)",
    )
    group.add_argument("--threads", type=positive, metavar="N", help="CPU threads (default: all cores)")
    group.add_argument("--seed", type=int, help="sampling seed, for reproducible runs")
    group.add_argument(
        "--tools",
        metavar="LIST",
        help="comma-separated built-in tools, or 'none' (default: calculator,python,web_search,read_page;"
        " the last two only when the network answers)",
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
            spec |= {"metavar": cli["metavar"], "type": checked(option)}
        group.add_argument(flag, **spec)


def checked(option: Any) -> Any:
    """An argparse type for `option`: its text as a number (or text), refused as `Option.problem` says."""
    number = float if float in option.types else int if int in option.types else str

    def convert(text: str) -> Any:
        try:
            value = number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {option.expected()}, not {text!r}") from None
        problem = option.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    convert.__name__ = number.__name__  # what argparse names in "invalid ... value"
    return convert


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
    value = _whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number above zero, not {text!r}")
    return value


def not_negative(text: str) -> int:
    """An argparse type: a whole number, zero or more."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text!r}")
    return value


def gpu_layers(text: str) -> int:
    """An argparse type: layers to offload, zero or more, or -1 for all of them."""
    value = _whole(text)
    if value < -1:
        raise argparse.ArgumentTypeError(f"must be zero or more, or -1 for all layers, not {text!r}")
    return value


def question(text: str) -> str:
    """An argparse type: a question that says something."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the question is empty")
    return text


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def make_agent(args: argparse.Namespace) -> Agent:
    """The agent the command-line options describe."""
    from agent.api import Agent
    from agent.core.settings import tool_choice_problem
    from agent.sessions import open_sessions
    from tools import default_tools

    names = tool_names(args)
    options = given_options(args)
    problem = tool_choice_problem(options.get("tool_choice"), names)
    if problem:  # said in the flags' words, before the model loads
        raise ValueError(f"--tool-choice {problem}" + (" (see --tools)" if names else ""))
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
        options |= {"kv_cache": getattr(args, "kv_cache", "f16")}
        options |= {"seed": args.seed}
        # Episodes at once (workers, or samples of one question) decode together on one model.
        options |= {"sequences": max(getattr(args, "workers", 1), options.get("samples") or 1)}
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


def tool_names(args: argparse.Namespace) -> list[str]:
    """The built-in tools the options ask for: `--tools`, else the default set; less `--no-search`
    and `--offline`."""
    from tools import BUILTIN, NETWORK

    if args.tools is not None:
        names = [n.strip() for n in args.tools.split(",") if n.strip()]
    else:
        names = list(BUILTIN) if args.offline else default_tool_names()
    return [
        n
        for n in names
        if n != "none" and not (args.no_search and n == "web_search") and not (args.offline and n in NETWORK)
    ]


def network_problem() -> str | None:
    """Why web search cannot work here (doctor's network check), or None when its host answers.

    `$QWQ_NETWORK` set to `on` or `off` skips the check (the tests set it: they never touch the
    network); tests in this process replace this function.
    """
    setting = os.environ.get("QWQ_NETWORK", "").lower()
    if setting in ("on", "off"):
        return None if setting == "on" else "QWQ_NETWORK=off"
    from agent.workloads.doctor import check_network

    check = check_network(timeout=2.0)
    return None if check.status == "ok" else check.detail.removesuffix("; web search will fail")


def default_tool_names() -> list[str]:
    """The built-in tools a command gets without `--tools`: all of them, less those that go online
    when the network check fails, which a one-line notice on stderr says."""
    from tools import BUILTIN, NETWORK

    names = list(BUILTIN)
    problem = network_problem()
    if problem is None:
        return names
    print(
        f"qwq-agent: offline ({problem}): leaving out {', '.join(NETWORK)}; --tools {','.join(names)} keeps them",
        file=sys.stderr,
    )
    return [n for n in names if n not in NETWORK]


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
