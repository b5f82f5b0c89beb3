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
import copy
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.api import Agent
    from agent.records import Event
    from agent.view import View

EXIT_ANSWERED, EXIT_NO_ANSWER, EXIT_USAGE = 0, 1, 2
EXIT_WAITING = 3
"""A call waits for approval: `qwq-agent sessions resume NAME --approve` (or --reject) continues."""


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
    add_command = commands.add_parser

    def add_parser(name: str, **options: Any) -> argparse.ArgumentParser:
        # argparse shares a parent's option objects between its children, so one command's
        # set_defaults(...) would change every command's defaults: each gets its own copy.
        options["parents"] = [copy.deepcopy(p) for p in options.get("parents", ())]
        return add_command(name, **options)

    commands.add_parser = add_parser  # type: ignore[method-assign]

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

    solve = commands.add_parser("solve", parents=[common], help="answer one question")
    solve.add_argument("question", help="the question, in quotes")
    solve.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    solve.set_defaults(run=solve_command)

    chat = commands.add_parser("chat", parents=[common], help="an interactive conversation")
    chat.set_defaults(run=chat_command)

    trace = commands.add_parser("trace", help="show a trace file, or write it as an HTML page")
    trace_commands = trace.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    show = trace_commands.add_parser("show", help="replay a trace in the terminal")
    show.add_argument("file", metavar="FILE.jsonl")
    show.add_argument("--hide-reasoning", action="store_true", help="do not show the model's reasoning")
    show.add_argument("--collapse-reasoning", action="store_true", help="one summary line per step's reasoning")
    show.set_defaults(run=trace_show_command)
    page = trace_commands.add_parser("html", help="write one self-contained HTML page")
    page.add_argument("file", metavar="FILE.jsonl")
    page.add_argument("-o", "--output", metavar="PAGE.html", help="where to write it (default: FILE.html)")
    page.set_defaults(run=trace_html_command)

    graph = commands.add_parser("graph", help="draw the agent's state machine (Mermaid, or an image with -o)")
    graph.add_argument(
        "-o", "--output", metavar="FILE", help="write FILE.png or .svg (needs Graphviz's dot), .dot or .mmd"
    )
    graph.set_defaults(run=graph_command)

    doctor = commands.add_parser("doctor", help="check that everything the agent needs is in place")
    doctor.add_argument("--model", help="the model to check (default: the embedded one)")
    doctor.add_argument("--ctx", type=positive, default=8192, metavar="TOKENS", help="context size to load it with")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(run=doctor_command)

    evaluation = commands.add_parser("eval", parents=[common], help="accuracy and cost on a JSONL math data set")
    evaluation.add_argument("dataset", help="JSONL: GSM8K, MATH/AIME/AMC (problem, answer) or question/answer")
    evaluation.add_argument("--limit", type=positive, metavar="N", help="items to run (default: all)")
    evaluation.add_argument("--offset", type=int, default=0, metavar="N", help="lines to skip first")
    evaluation.add_argument("--question-key", metavar="KEY", help="column of the question (default: guessed)")
    evaluation.add_argument("--answer-key", metavar="KEY", help="column of the reference answer (default: guessed)")
    evaluation.add_argument("--id-key", metavar="KEY", help="column of the item id (default: id, else line number)")
    evaluation.add_argument("-o", "--output", metavar="FILE", help="results JSONL, one line per item; reruns resume")
    evaluation.add_argument(
        "--workers", type=positive, default=1, metavar="N", help="parallel episodes (served models)"
    )
    evaluation.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    evaluation.add_argument(
        "--compare", metavar="OPTIONS", help='a second configuration, e.g. --compare="--tools none"'
    )
    evaluation.add_argument("--plot", metavar="FILE.png", help="draw accuracy and cost (needs matplotlib)")
    evaluation.set_defaults(run=_command_of("agent.evaluation"), tools="calculator,python", hide_reasoning=True)

    bench = commands.add_parser("bench", help="measure speed and overheads side by side; --json for one object")
    bench.add_argument("--model", help="GGUF path or hub file (default: the embedded model)")
    bench.add_argument("--threads", type=positive, metavar="N", help="CPU threads (default: all cores)")
    bench.add_argument("--n-gpu-layers", type=int, default=0, metavar="N", help="layers to offload to the GPU")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (for tests); figures are noisier")
    bench.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bench.set_defaults(run=_command_of("agent.bench"))

    run = commands.add_parser("run", parents=[common], help="run a YAML workflow of agent steps")
    run.add_argument("workflow", metavar="WORKFLOW.yaml")
    run.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="set a workflow variable")
    run.add_argument("--json", action="store_true", help="print every step's answer as one JSON object")
    run.set_defaults(run=_command_of("agent.workflow"), hide_reasoning=True)

    batch = commands.add_parser("batch", parents=[common], help="answer a JSONL file of tasks, resumably")
    batch.add_argument("tasks", metavar="TASKS.jsonl", help='one {"id": ..., "question": ...} per line')
    batch.add_argument("-o", "--output", required=True, metavar="OUT.jsonl", help="results; reruns skip done ids")
    batch.add_argument("--workers", type=positive, default=1, metavar="N", help="episodes at once (model servers)")
    batch.add_argument("--quiet", action="store_true", help="no progress line")
    batch.set_defaults(run=_command_of("agent.batch"), hide_reasoning=True)

    sessions = commands.add_parser("sessions", parents=[common], help="list, show, resume or delete sessions")
    sessions.add_argument("action", nargs="?", choices=("list", "show", "delete", "resume"), default="list")
    sessions.add_argument("name", nargs="?", help="the session (show, delete, resume)")
    decision = sessions.add_mutually_exclusive_group()
    decision.add_argument("--yes", dest="decision", action="store_const", const="approve", help="approve the call")
    decision.add_argument("--no", dest="decision", action="store_const", const="reject", help="decline the call")
    sessions.add_argument("--edit", metavar="JSON", help="approve the call with these arguments instead")
    sessions.add_argument("--transcript", action="store_true", help="show: the whole transcript too")
    sessions.set_defaults(run=_command_of("agent.sessions"))
    return parser


def _command_of(module: str) -> Any:
    """A command whose code lives in `module.command`, imported only when it runs."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(importlib.import_module(module).command(args))

    return run


def with_approvals(runner: Any, events: Iterator[Event], session: str | None) -> Iterator[Event]:
    """Pass events on; at a call waiting for approval, ask on the terminal and go on with the answer.

    `runner` is the `Agent` or `Chat` whose `resume_stream` continues. Without a terminal to ask
    on, the episode stays paused (in its session, if any) and the final result says so.
    """
    from agent.records import ApprovalRequested, Final

    while True:
        request = None
        for event in events:
            if isinstance(event, ApprovalRequested):
                request = event
                yield event  # the view lets go of the terminal (its live status line) before we ask
            elif request is None or not isinstance(event, Final) or not sys.stdin.isatty():
                yield event
        if request is None:
            return
        if not sys.stdin.isatty():
            where = f"qwq-agent sessions resume {session} --yes (or --no)" if session else "a --session to resume"
            print(f"qwq-agent: {request.tool} waits for approval ({request.reason}); needs {where}", file=sys.stderr)
            return
        approve, edited = ask_approval(request)
        events = runner.resume_stream(approve, edited)


def ask_approval(request: Any) -> tuple[bool, dict[str, Any] | None]:
    """Ask on stderr/stdin: y runs the call, e edits its arguments (JSON), anything else declines."""
    why = {"marked": "this tool asks for approval", "code": "code execution", "untrusted": "code after web text"}
    print(f"\napprove {request.tool} {json.dumps(request.arguments, ensure_ascii=False)}?", file=sys.stderr)
    while True:
        answer = input(f"({why.get(request.reason, request.reason)}) [y]es / [n]o / [e]dit: ").strip().lower()
        if answer in ("y", "yes"):
            return True, None
        if answer in ("e", "edit"):
            try:
                edited = json.loads(input("arguments as JSON: "))
            except json.JSONDecodeError as exc:
                print(f"not JSON: {exc}", file=sys.stderr)
                continue
            if isinstance(edited, dict):
                return True, edited
            print("the arguments must be a JSON object", file=sys.stderr)
            continue
        return False, None


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
        from agent.openai_model import OpenAIModel

        model = OpenAIModel(
            model.removeprefix("openai:"),
            api_key=args.api_key,
            model_name=args.model_name,
            context_size=args.ctx,
            seed=args.seed,
            thinking={"auto": None, "on": True, "off": False}[args.thinking],
        )
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
    if getattr(args, "trace", None):
        from agent.trace import tracer_for

        tracer_for(args.trace, command=args.command).attach(agent)
    return agent


def make_view(args: argparse.Namespace, agent: Agent | None = None, *, show_answer: bool = True) -> View:
    """The terminal view the options ask for, on stderr (stdout is kept for answers)."""
    from agent.view import View

    return View(
        sys.stderr,
        show_reasoning=not args.hide_reasoning,
        collapse_reasoning=getattr(args, "collapse_reasoning", False),
        show_answer=show_answer,
        context_size=getattr(getattr(agent, "model", None), "context_size", None),
    )


def solve_command(args: argparse.Namespace) -> int:
    """`qwq-agent solve QUESTION`."""
    agent = make_agent(args)
    # On a terminal the answer is printed on stdout at the end; stream it only when stdout is piped.
    view = make_view(args, agent, show_answer=not sys.stdout.isatty())
    result = None
    view.begin()
    try:
        for event in with_approvals(agent, agent.stream(args.question, session=args.session), args.session):
            result = view.show(event) or result
    finally:
        view.close()
    assert result is not None
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif result.answer is not None:
        view.answer(result, sys.stdout)
    elif result.stop_reason == "approval":
        return EXIT_WAITING
    else:
        print(f"qwq-agent: no answer ({result.stop_reason} budget reached)", file=sys.stderr)
    return EXIT_ANSWERED if result.answer is not None else EXIT_NO_ANSWER


CHAT_HELP = """commands:
  /help         this list
  /reset        forget the conversation
  /save FILE    save the conversation (Markdown, or JSON when FILE ends in .json)
  /trace FILE   trace the next turns to FILE.jsonl (/trace off stops, /trace says where it goes)
  /model        the model in use
  /quit         leave (so does Ctrl-D)
A line ending in \\ continues on the next one; a line of three quotes (\"\"\") opens and closes a block.
Ctrl-C stops an answer; the conversation stays as it was before the question."""


def chat_command(args: argparse.Namespace) -> int:
    """`qwq-agent chat`: questions from the prompt until /quit or end of input."""
    history = _start_history()
    agent = make_agent(args)
    chat = agent.chat(session=args.session)
    view = make_view(args, agent, show_answer=not sys.stdout.isatty())
    turns: list[tuple[str, Any]] = []
    tracing: Any = None
    print(
        "qwq-agent chat: /help lists the commands, /reset forgets, /quit leaves; Ctrl-C stops an answer.",
        file=sys.stderr,
    )
    prompt = "you> " if sys.stdin.isatty() else ""  # piped input gets answers only on stdout
    try:
        while True:
            try:
                line = _read_message(prompt)
            except EOFError:
                return EXIT_ANSWERED
            except KeyboardInterrupt:
                print(file=sys.stderr)
                continue
            command, _, rest = line.partition(" ")
            rest = rest.strip()
            if command in ("/quit", "/exit"):
                return EXIT_ANSWERED
            if command == "/reset":
                chat.reset()
                turns.clear()
                print("(conversation reset)", file=sys.stderr)
            elif command == "/help":
                print(CHAT_HELP, file=sys.stderr)
            elif command == "/model":
                model = agent.model
                facts = model.describe() if hasattr(model, "describe") else {"name": model.name}
                print("\n".join(f"  {k}: {v}" for k, v in facts.items()), file=sys.stderr)
            elif command == "/save":
                print(_save_chat(rest, turns) if rest else "usage: /save FILE", file=sys.stderr)
            elif command == "/trace":
                tracing = _toggle_trace(agent, rest, tracing)
            elif command.startswith("/") and " " not in line.strip():
                print(f"unknown command {command}; /help lists them", file=sys.stderr)
            elif line.strip():
                view.begin()
                try:
                    for event in with_approvals(chat, chat.stream(line), args.session):
                        result = view.show(event)
                        if result is not None:
                            turns.append((line, result))
                            if result.answer is None:
                                print(f"(no answer: {result.stop_reason})")
                            else:
                                view.answer(result, sys.stdout)
                except KeyboardInterrupt:
                    view.close()
                    print("\n(stopped; the conversation is as it was before this question)", file=sys.stderr)
    finally:
        view.close()
        if history is not None:
            with contextlib.suppress(OSError):
                import readline

                readline.write_history_file(history)


def _start_history() -> str | None:
    """Line editing, and input history kept across chats in the cache directory."""
    try:
        import readline
    except ImportError:
        return None
    if not sys.stdin.isatty():
        return None
    from tools.web import default_cache_dir

    path = default_cache_dir() / "chat_history"
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.read_history_file(path)
    readline.set_history_length(1000)
    return str(path)


def _read_message(prompt: str) -> str:
    """One message: a line, lines joined by a trailing backslash, or a triple-quoted block."""
    first = input(prompt)
    if first.strip() == '"""':
        lines = []
        while (line := input("... " if prompt else "")).strip() != '"""':
            lines.append(line)
        return "\n".join(lines).strip()
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(input("... " if prompt else ""))
    return "\n".join(lines).strip()


def _save_chat(path: str, turns: list[tuple[str, Any]]) -> str:
    """Write the conversation so far; returns what to tell the user."""
    from pathlib import Path

    target = Path(path).expanduser()
    if target.suffix == ".json":
        text = json.dumps([{"question": q, "result": r.to_dict()} for q, r in turns], ensure_ascii=False, indent=1)
    else:
        parts = []
        for question, result in turns:
            parts.append(f"## {question}\n")
            for call in result.tool_calls:
                parts.append(f"- `{call.name}` {json.dumps(call.arguments, ensure_ascii=False)} → `{call.output}`")
            parts.append(f"\n{result.answer if result.answer is not None else '(no answer)'}\n")
        text = "\n".join(parts)
    try:
        target.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        return f"cannot save to {target}: {exc.strerror}"
    return f"(saved {len(turns)} turns to {target})"


def _toggle_trace(agent: Agent, path: str, tracing: Any) -> Any:
    """`/trace FILE` traces the next turns, `/trace off` stops, `/trace` tells; returns the tracer in use."""
    from agent.trace import Tracer

    if not path:
        where = tracing.path if tracing is not None else "nowhere (/trace FILE.jsonl starts one)"
        print(f"(tracing to {where})", file=sys.stderr)
        return tracing
    if tracing is not None:  # one chat trace at a time: the next replaces it
        agent.stream = agent.stream.__wrapped__  # type: ignore[method-assign,attr-defined]
        tracing.close()
    if path == "off":
        print("(tracing stopped)", file=sys.stderr)
        return None
    tracer = Tracer(path, command="chat")
    tracer.attach(agent)
    print(f"(tracing to {tracer.path}; open it with: qwq-agent trace html {tracer.path})", file=sys.stderr)
    return tracer


def trace_show_command(args: argparse.Namespace) -> int:
    """`qwq-agent trace show FILE`: replay a trace in the terminal."""
    from agent.trace import load, replay

    trace = load(args.file)
    view = make_view(args)
    view.context_size = (trace.header.get("model") or {}).get("context_size")
    replay(trace, view)
    return EXIT_ANSWERED


def trace_html_command(args: argparse.Namespace) -> int:
    """`qwq-agent trace html FILE -o PAGE.html`: one self-contained page."""
    from pathlib import Path

    from agent.trace import html, load

    output = Path(args.output or Path(args.file).with_suffix(".html"))
    output.write_text(html(load(args.file)), encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_ANSWERED


def graph_command(args: argparse.Namespace) -> int:
    """`qwq-agent graph [-o FILE]`: the compiled state machine, drawn by LangGraph."""
    from agent.drawing import draw

    text = draw(args.output)
    if text is not None:
        print(text, end="")
    else:
        print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_ANSWERED


def doctor_command(args: argparse.Namespace) -> int:
    """`qwq-agent doctor`: check the installation; exit 0 when usable, 1 with the fixes."""
    from agent.doctor import report, run_checks

    checks = run_checks(model=args.model, context_size=args.ctx)
    return report(checks, sys.stdout, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
