"""Pictures of the agent's state machine, drawn from the compiled LangGraph graph itself.

`mermaid()` is LangGraph's own Mermaid text for the graph; `dot()` writes the same nodes and
edges in Graphviz's DOT language; `draw(path)` picks the format from the file name and renders
PNG or SVG with Graphviz's `dot` program, offline. (LangGraph's own PNG drawing needs either the
network, mermaid.ink, or pygraphviz compiled against Graphviz; `dot` alone is enough here.)

The graph is compiled on a scripted model, so nothing is loaded: its shape does not depend on
the model or the tools. This module draws; it does not run the graph.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from agent.core.files import check_writable, write_atomically

IMAGE_FORMATS = ("png", "svg")
"""Formats rendered through Graphviz's `dot`."""


def compiled_graph() -> Any:
    """The agent's compiled graph, built on a scripted model (no weights are loaded)."""
    from agent.api import Agent
    from agent.models.scripted import ScriptedModel
    from tools import default_tools

    return Agent(ScriptedModel([]), default_tools(["calculator"])).graph


def mermaid(graph: Any = None) -> str:
    """LangGraph's Mermaid text for the graph (the agent's by default)."""
    return str((graph or compiled_graph()).get_graph().draw_mermaid())


def dot(graph: Any = None) -> str:
    """The graph in Graphviz's DOT language: solid edges always run, dashed ones on a condition."""
    drawable = (graph or compiled_graph()).get_graph()
    lines = [
        "digraph agent {",
        '  graph [rankdir=TB, bgcolor="white", pad=0.3, nodesep=0.6, ranksep=0.5];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f2f0ff", color="#7c5cc4", fontname="Helvetica"];',
        '  edge [color="#555555", fontname="Helvetica", fontsize=10];',
    ]
    for key, node in drawable.nodes.items():
        if key in ("__start__", "__end__"):
            fill = "#ffffff" if key == "__start__" else "#bfb6fc"
            lines.append(f'  "{key}" [label="{key.strip("_").upper()}", shape=oval, fillcolor="{fill}"];')
        else:
            lines.append(f'  "{key}" [label="{node.name}"];')
    for edge in drawable.edges:
        style = ", style=dashed" if edge.conditional else ""
        label = f', label="{edge.data}"' if edge.data else ""
        lines.append(f'  "{edge.source}" -> "{edge.target}" [{style.lstrip(", ")}{label}];'.replace("[, ", "["))
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(path: str | None = None, graph: Any = None) -> str | None:
    """Mermaid text when `path` is None; else write `path` (.png, .svg, .dot, .mmd) and return None.

    Raises `ValueError` for an unknown extension or when PNG/SVG is asked and Graphviz is missing.
    """
    if path is None:
        return mermaid(graph)
    target = check_writable(path)
    suffix = target.suffix.lower().lstrip(".")
    if suffix in ("mmd", "mermaid"):
        write_atomically(target, mermaid(graph))
    elif suffix in ("dot", "gv"):
        write_atomically(target, dot(graph))
    elif suffix in IMAGE_FORMATS:
        program = shutil.which("dot")
        if program is None:
            raise ValueError(
                "drawing PNG or SVG needs Graphviz's dot program: apt-get install graphviz "
                "(or brew install graphviz); without it, write .mmd or .dot"
            )
        done = subprocess.run([program, f"-T{suffix}"], input=dot(graph).encode(), capture_output=True, timeout=60)
        if done.returncode != 0:
            raise ValueError(f"Graphviz could not draw the graph: {done.stderr.decode(errors='replace').strip()}")
        write_atomically(target, done.stdout)
    else:
        raise ValueError(f"cannot draw {path}: use .png, .svg, .dot or .mmd")
    return None
