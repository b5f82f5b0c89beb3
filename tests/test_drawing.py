"""`qwq-agent graph`: the compiled graph as Mermaid, DOT, and a PNG drawn offline by Graphviz."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent import cli
from agent.ui.drawing import compiled_graph, dot


def test_graph_prints_langgraphs_own_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph"]) == 0
    out = capsys.readouterr().out
    assert out == compiled_graph().get_graph().draw_mermaid()
    assert "start --> reason;" in out and "reason -.-> act;" in out and "__end__" in out


def test_dot_has_every_node_and_edge() -> None:
    text = dot()
    drawable = compiled_graph().get_graph()
    for key in drawable.nodes:
        assert f'"{key}" [label=' in text
    for edge in drawable.edges:
        assert f'"{edge.source}" -> "{edge.target}"' in text
    assert '"start" -> "reason" [];' in text and '"reason" -> "act" [style=dashed];' in text


def test_png_and_text_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz is missing: `make setup` installs it (apt-get install graphviz)")
        pytest.skip("Graphviz is not installed")
    png = tmp_path / "graph.png"
    assert cli.main(["graph", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    mmd = tmp_path / "graph.mmd"
    assert cli.main(["graph", "-o", str(mmd)]) == 0 and mmd.read_text().startswith("---")
    assert cli.main(["graph", "-o", str(tmp_path / "graph.gif")]) == 2
    assert "use .png, .svg, .dot or .mmd" in capsys.readouterr().err
