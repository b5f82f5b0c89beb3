"""`qwq-agent chat`: a conversation on the terminal, with line editing and slash commands.

Questions come from the prompt (or piped stdin) until /quit or end of input; each turn extends
the same transcript. This module reads and prints; the conversation is `agent.api.Chat`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

from agent.cli import options
from agent.cli.approvals import with_approvals
from agent.cli.options import EXIT_ANSWERED, EXIT_INTERRUPTED
from agent.ui.terminal import printable

if TYPE_CHECKING:
    from agent.api import Agent


def add(commands: Any, common: argparse.ArgumentParser) -> None:
    """Declare `chat`."""
    chat = commands.add_parser("chat", parents=[common], help="an interactive conversation")
    chat.set_defaults(run=run)


CHAT_HELP = """commands:
  /help         this list
  /reset        forget the conversation
  /save FILE    save the conversation (Markdown, or JSON when FILE ends in .json)
  /trace FILE   trace the next turns to FILE.jsonl (/trace off stops, /trace says where it goes)
  /model        the model in use
  /quit         leave (so does Ctrl-D)
A line ending in \\ continues on the next one; a line of three quotes (\"\"\") opens and closes a block.
Ctrl-C stops an answer; the conversation stays as it was before the question."""


def run(args: argparse.Namespace) -> int:
    """`qwq-agent chat`: questions from the prompt until /quit or end of input."""
    history = _start_history()
    agent = options.make_agent(args)
    chat = agent.chat(session=args.session)
    view = options.make_view(args, agent, show_answer=not sys.stdout.isatty())
    turns: list[tuple[str, Any]] = []
    tracing: Any = None
    print(
        "qwq-agent chat: /help lists the commands, /reset forgets, /quit leaves; Ctrl-C stops an answer.",
        file=sys.stderr,
    )
    prompt = "you> " if sys.stdin.isatty() else ""  # piped input gets answers only on stdout
    interrupted = False  # a Ctrl-C at the prompt; a second one in a row leaves
    try:
        while True:
            try:
                line = _read_message(prompt)
            except EOFError:
                if prompt:
                    print(file=sys.stderr)  # the shell's prompt on a line of its own, not after "you>"
                return EXIT_ANSWERED
            except KeyboardInterrupt:
                if interrupted:
                    print(file=sys.stderr)
                    return EXIT_INTERRUPTED
                interrupted = True
                print("\n(Ctrl-C again or Ctrl-D leaves)", file=sys.stderr)
                continue
            interrupted = False
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
                facts = model.describe()
                print(printable("\n".join(f"  {k}: {v}" for k, v in facts.items())), file=sys.stderr)
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
                                print(printable(f"(no answer: {result.stop_reason})"))
                            else:
                                view.answer(result, sys.stdout)
                except KeyboardInterrupt:
                    view.close()
                    print("\n(stopped; the conversation is as it was before this question)", file=sys.stderr)
                except Exception as exc:  # a bug of ours (DESIGN rule 4): report it, keep the conversation
                    view.close()
                    print(_failure_line(exc), file=sys.stderr)
    finally:
        view.close()
        if history is not None:
            with contextlib.suppress(OSError):
                import readline

                readline.write_history_file(history)


def _failure_line(exc: Exception) -> str:
    """One line for a question that failed on a bug: what was raised, and that nothing was lost."""
    what = " ".join(str(exc).split())
    what = what if len(what) <= 200 else what[:199] + "…"
    return printable(
        f"qwq-agent: error: this question failed ({type(exc).__name__}{': ' + what if what else ''}); "
        "a bug, please report it. The conversation is as it was before this question."
    )


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
    from agent.ui.trace import Tracer

    if not path:
        where = tracing.path if tracing is not None else "nowhere (/trace FILE.jsonl starts one)"
        print(f"(tracing to {where})", file=sys.stderr)
        return tracing
    if tracing is not None:  # one chat trace at a time: the next replaces it
        agent.observers.remove(tracing)
        tracing.close()
    if path == "off":
        print("(tracing stopped)", file=sys.stderr)
        return None
    try:
        tracer = Tracer(path, command="chat")
    except ValueError as exc:  # the chat goes on untraced
        print(f"(not tracing: {exc})", file=sys.stderr)
        return None
    tracer.attach(agent)
    print(f"(tracing to {tracer.path}; open it with: qwq-agent trace html {tracer.path})", file=sys.stderr)
    return tracer
