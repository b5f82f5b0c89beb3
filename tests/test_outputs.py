"""Output files: written whole or not at all, a full disk never loses an answer, bad paths are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import Agent
from agent.core.files import OutputError, write_atomically
from agent.models.scripted import ScriptedModel
from agent.ui.trace import Tracer


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root); skipped where it cannot be mounted."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120)


def test_a_write_that_does_not_fit_leaves_the_old_file_whole(full_disk: Path) -> None:
    page = full_disk / "page.html"
    page.write_text("old page\n")
    with pytest.raises(OutputError, match="No space left"):
        write_atomically(page, "x" * 200_000)
    assert page.read_text() == "old page\n"
    assert sorted(p.name for p in full_disk.iterdir()) == ["page.html"]  # no temporary file left


def test_a_full_disk_during_a_trace_keeps_the_answer_and_whole_lines(full_disk: Path) -> None:
    filler = full_disk / "filler"
    filler.write_bytes(b"\0" * 40_000)  # leave room for a few lines only
    path = full_disk / "run.jsonl"
    tracer = Tracer(path, command="solve")
    answer = " ".join(f"Step {i}." for i in range(3000))  # long, and no loop: the loop stop would end it
    agent = tracer.attach(Agent(ScriptedModel([answer]), [], tool_choice="none", max_tokens=100_000))
    result = agent.run("go")
    tracer.close()
    assert result.answer is not None and result.answer.strip() == answer.strip()
    assert tracer.failed is not None and "space" in tracer.failed
    lines = path.read_text().splitlines()
    assert lines and all(json.loads(line) for line in lines)  # whole JSON lines only
    assert path.read_bytes().endswith(b"\n")


def test_output_paths_never_create_directories(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    done = cli("graph", "-o", str(missing / "x.mmd"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "nonexistent").exists()
    with pytest.raises(OutputError):
        Tracer(missing / "t.jsonl")
    assert not (tmp_path / "nonexistent").exists()


def test_trace_html_to_a_directory_is_one_line(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    tracer = Tracer(trace, command="solve")
    tracer.attach(Agent(ScriptedModel(["42"]), [], tool_choice="none")).run("go")
    tracer.close()
    locked = tmp_path / "locked"
    locked.mkdir()
    done = cli("trace", "html", str(trace), "-o", str(locked))  # a directory, writable even by root
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("command", [["trace", "html"], ["trace", "show"], ["batch"]])
def test_missing_or_directory_inputs_are_one_line(tmp_path: Path, command: list[str]) -> None:
    extra = ["-o", str(tmp_path / "out.jsonl")] if command == ["batch"] else []
    for given in (tmp_path / "missing.jsonl", tmp_path):
        done = cli(*command, str(given), *extra)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_eval_plot_to_a_missing_directory_is_refused_before_the_run(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n')
    # --model names no file: had the run started, the error would be about the model.
    done = cli("eval", str(data), "--model", str(tmp_path / "none.gguf"), "--plot", str(tmp_path / "no" / "p.png"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and ("no directory" in done.stderr or "matplotlib" in done.stderr)
    assert not (tmp_path / "no").exists()
