"""Nothing from a model, a tool, a trace or a session acts on the terminal: it is shown escaped.

The host-effect tests run the real command line on a pseudo-terminal (the `pty` module), with a
scripted model whose code runs in the real sandbox and prints escape sequences (a window title,
an OSC 52 clipboard write, a C1 CSI, bidi overrides), and read every byte that reaches the
terminal: none of the payload's control bytes may arrive, and its escaped form must show.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

from agent.ui.terminal import printable, printable_json

ROOT = Path(__file__).resolve().parent.parent

# What a hostile page or program writes: set the window title, put text on the clipboard, a C1
# CSI, right-to-left override and isolates, a backspace and a carriage return.
PAYLOAD = "\x1b]0;PWNED\x07\x1b]52;c;cHduZWQ=\x07\x9b31m\u202egnp.exe\u2066x\u2069\x08\r"
# The same without \r and \b, for places that are one line (a comment in code, a question).
INLINE = "\x1b]0;PWNED\x07\x1b]52;c;cHduZWQ=\x07\x9b31m\u202e\u2066x\u2069"
SHOWN = "\\x1b]0;PWNED\\x07\\x1b]52;c;cHduZWQ=\\x07\\x9b31m\\u202e"
"""How the payload looks on the terminal."""


def test_printable_escapes_every_control_but_newline_and_tab() -> None:
    assert printable(PAYLOAD) == SHOWN + "gnp.exe\\u2066x\\u2069\\x08\\x0d"
    assert printable("a\tb\nc ≈ ½ 𝑥 é") == "a\tb\nc ≈ ½ 𝑥 é"  # text stays text
    assert printable("\x00\x7f\x85\ud800") == "\\x00\\x7f\\x85\\ud800"  # NUL, DEL, C1 NEL, a lone surrogate


def test_printable_json_is_the_same_value_with_nothing_raw() -> None:
    value = {"code": PAYLOAD, "note": "≈ ½", "n": [1, None]}
    text = printable_json(value)
    assert json.loads(text) == value
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text) and "≈ ½" in text


def call(name: str, **arguments: object) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(arguments)}}}\n</tool_call>'


# The real command line, with the embedded model replaced by a scripted one.
DRIVER = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {root!r})
    import agent.api
    from agent.models.scripted import ScriptedModel

    turns = json.loads(os.environ["TURNS"])
    agent.api.LlamaCppModel = lambda *args, **options: ScriptedModel(turns)
    from agent.cli.main import main

    sys.exit(main(sys.argv[1:]))
    """
)

# The model's code prints the payload in the sandbox; its own text (a comment in the code, its
# words around the call, its answer) carries the payload too, and it first calls a tool whose
# name is rich markup for a hyperlink (which rich would draw as an OSC 8 sequence).
TURNS = [
    f"Running it. {INLINE}\n" + call("[link=https://example.org/]python[/link]", code="1"),
    call("python", code=f"print({PAYLOAD!r})  # {INLINE}"),
    f"Done. {PAYLOAD}",
]


def on_terminal(
    tmp_path: Path, *args: str, color: bool = True, reply: tuple[bytes, bytes] | None = None
) -> tuple[int, bytes]:
    """Run `qwq-agent ARGS` on a pseudo-terminal (stdin, stdout, stderr); returns its exit code and
    every byte it wrote. `reply`: when the first bytes appear in the output, type the second."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(root=str(ROOT)))
    env = {
        **os.environ,
        "TURNS": json.dumps(TURNS),
        "QWQ_SESSIONS": str(tmp_path / "s.sqlite"),
        "QWQ_CACHE_DIR": str(tmp_path / "cache"),
        "QWQ_SANDBOX_STRICT": "1",
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    if not color:
        env["NO_COLOR"] = "1"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(driver), *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path
    )
    os.close(slave)
    data, deadline = b"", time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            data += chunk
            if reply is not None and reply[0] in data:
                os.write(master, reply[1])
                reply = None
        else:
            proc.kill()
            raise AssertionError(f"qwq-agent {' '.join(args)} did not end: {data[-2000:]!r}")
        return proc.wait(timeout=60), data
    finally:
        os.close(master)


def assert_nothing_acts_on_the_terminal(data: bytes, *, color: bool) -> None:
    text = data.decode("utf-8")  # strict: a stray byte would fail here
    assert "\x07" not in text and "\x08" not in text  # BEL ends an OSC; backspace rewrites
    assert not re.search("[\x80-\x9f]", text)  # C1 controls (CSI, OSC, ...)
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", text)  # bidi overrides and isolates
    if color:  # the view's own colours and cursor moves are CSI sequences; nothing else may start
        assert not re.search("\x1b[^\\[]", text)
        assert not re.search("\r(?![\n\x1b])", text)  # CR: the terminal's CR LF, or the live line's redraw
    else:
        assert "\x1b" not in text
        assert not re.search("\r(?!\n)", text)  # CR only in the terminal's own CR LF


def visible(data: bytes) -> str:
    """What a person reads: the text without the view's CSI sequences, lines unwrapped."""
    return re.sub("\x1b\\[[0-9;?]*[A-Za-z]", "", data.decode("utf-8"))


@pytest.mark.parametrize("color", [True, False], ids=["rich", "plain"])
def test_a_run_trace_and_session_show_sandbox_output_escaped(tmp_path: Path, color: bool) -> None:
    code, data = on_terminal(
        tmp_path, "solve", f"Run it {INLINE}", "--tools", "python", "--tool-choice", "auto",
        "--session", "s", "--trace", "run.jsonl", color=color,
    )  # fmt: skip
    assert code == 0, data[-3000:]
    assert_nothing_acts_on_the_terminal(data, color=color)
    shown = visible(data)
    assert SHOWN in shown  # the sandbox's output reached the view, escaped
    assert "Done. " + SHOWN in shown  # and so did the answer (on stdout)

    # `sessions` prints plain lines whatever the terminal: once is enough.
    later = [["trace", "show", "run.jsonl"]] + (
        [] if color else [["sessions"], ["sessions", "show", "s", "--transcript"]]
    )
    for args in later:
        code, data = on_terminal(tmp_path, *args, color=color)
        assert code == 0, data[-3000:]
        assert_nothing_acts_on_the_terminal(data, color=color)
        assert "PWNED" in visible(data) and SHOWN[:20] in visible(data)


def test_the_approval_prompt_shows_the_call_escaped(tmp_path: Path) -> None:
    code, data = on_terminal(
        tmp_path, "solve", "Run it", "--tools", "python", "--tool-choice", "auto", "--approve", "always",
        reply=(b"[e]dit: ", b"n\n"),
    )  # fmt: skip
    assert code == 0, data[-3000:]
    assert_nothing_acts_on_the_terminal(data, color=True)
    prompt = visible(data).split("approve python", 1)[1].split("[e]dit:", 1)[0]
    assert "\\u001b]0;PWNED\\u0007" in prompt and "\\u202e" in prompt  # the call, as JSON escapes
