"""The README's Python blocks run as written, in order, in seconds.

Where a block leaves the model to the agent (`Agent()`: the embedded model), the test puts a
`FunctionModel` in the model loader's place, a reasoning model that calls the calculator when a
question holds arithmetic and answers from what it returned: the blocks' own code, the tools,
the graph and the sessions all run for real, without llama.cpp's minutes or the network. The
real model end to end is `tests/test_e2e.py`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agent.models.scripted import FunctionModel

README = Path(__file__).resolve().parent.parent / "README.md"
ARITHMETIC = re.compile(r"\d[\d\s.]*(?:[-+*/^][\d\s.()]*)+\d")


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def respond(prompt: str) -> str:
    """A reasoning turn: a calculator call for a question with arithmetic, then the answer."""
    last = prompt.rsplit("<|im_start|>user\n", 1)[-1]
    if "<tool_response>" in last:
        output = last.split("<tool_response>", 1)[1].split("</tool_response>", 1)[0].strip()
        return f"The calculator says {output}.\n</think>\n\nThe answer is {output}."
    found = ARITHMETIC.search(last.split("<|im_end|>", 1)[0])
    if found is None:
        return "Nothing to compute here.\n</think>\n\nDone."
    call = {"name": "calculator", "arguments": {"expression": found.group().strip()}}
    return f"Let me compute it.\n</think>\n\n<tool_call>\n{json.dumps(call)}\n</tool_call>"


def test_the_readme_has_python_blocks_that_compile() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    for number, block in enumerate(blocks, start=1):
        compile(block, f"README block {number}", "exec")


def test_the_readme_python_blocks_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import agent.api

    loaded: list[FunctionModel] = []

    def load(spec: Any = None, **options: Any) -> FunctionModel:
        loaded.append(FunctionModel(respond, thinking=True))
        return loaded[-1]

    monkeypatch.setattr(agent.api, "LlamaCppModel", load)
    monkeypatch.setenv("QWQ_SESSIONS", str(tmp_path / "sessions.sqlite"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for number, block in enumerate(python_blocks(), start=1):
        exec(compile(block, f"README block {number}", "exec"), namespace)
        if number == 1:  # the first block's run really called the calculator and answered from it
            result = namespace["result"]
            assert result.answer == "The answer is 3305." and result.tool_calls[0].output == "3305"
    assert len(loaded) >= 4  # every block that makes an agent got the injected model
    assert "session 'work' has no unfinished episode to resume" in capsys.readouterr().out  # block 4's resume
    result = namespace["result"]
    assert result.stop_reason == "answer" and result.answer == "Done."  # the last block's run
