"""What the command line says about itself matches what it does."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

from agent.cli.main import build_parser


def test_version_is_the_installed_one() -> None:
    done = subprocess.run([sys.executable, "-m", "agent.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"qwq-agent {version('qwq-agent')}"


def test_eval_help_states_the_tools_it_really_uses() -> None:
    parser = build_parser()
    evaluation = parser._subparsers._group_actions[0].choices["eval"]  # type: ignore[union-attr,index]
    real = evaluation.parse_args(["data.jsonl"]).tools
    text = " ".join(evaluation.format_help().split())
    stated = re.search(r"--tools LIST comma-separated built-in tools, or 'none' \(default: ([^)]*)\)", text)
    assert stated is not None and stated.group(1) == real
