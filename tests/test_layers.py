"""The house keeps its shape: the layer contracts hold, nothing imports in a cycle, modules stay small.

The contracts are import-linter's, in pyproject.toml (`make lint` runs them too); imports inside
functions and under TYPE_CHECKING count like any other, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "tools", "prompts")


def test_the_layer_contracts_are_kept() -> None:
    # In a child process: import-linter reconfigures logging, which later tests rely on.
    check = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_module_imports_itself_back() -> None:
    import grimp

    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = strongly_connected(graph.modules, graph.find_modules_directly_imported_by)
    assert [sorted(c) for c in cycles if len(c) > 1] == []


def test_no_module_is_over_500_lines() -> None:
    modules = [p for package in (*PACKAGES, "tests") for p in (ROOT / package).rglob("*.py")]
    long = {p.relative_to(ROOT).as_posix(): n for p in modules if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def strongly_connected(nodes: set[str], edges: object) -> list[set[str]]:
    """Tarjan's strongly connected components of a directed graph; `edges(node)` gives successors."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges(root))))]  # type: ignore[operator]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    work.append((successor, iter(sorted(edges(successor)))))  # type: ignore[operator]
                    break
                if successor in stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
    return found


def test_strongly_connected_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert sorted(map(sorted, strongly_connected(set(edges), lambda n: edges.get(n, set())))) == [
        ["a", "b", "c"],
        ["d"],
    ]
