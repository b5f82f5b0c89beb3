"""The README's Python blocks run as written, in order, on the embedded model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_the_readme_has_python_blocks_that_compile() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    for number, block in enumerate(blocks, start=1):
        compile(block, f"README block {number}", "exec")


@pytest.mark.model
def test_the_readme_python_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWQ_SESSIONS", str(tmp_path / "sessions.sqlite"))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, block in enumerate(python_blocks(), start=1):
        exec(compile(block, f"README block {number}", "exec"), namespace)
    assert namespace["result"] is not None
