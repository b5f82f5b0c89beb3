"""Where the modules of the flat layout went: `agent.records` is now `agent.core.records`, and so on.

Two kinds of reader still name the old paths: checkpoints written by earlier versions (LangGraph's
serializer records each object's type as module and name, such as `agent.records.ToolCall`),
and programs written against the old README (`from agent.model import Sampling`). `install()`
lets both resolve: importing an old name gives a module that looks its attributes up in the new
modules, in order. New code imports the new paths; this module imports nothing until asked.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

MOVED: dict[str, tuple[str, ...]] = {
    "agent.records": ("agent.core.records",),
    "agent.transcript": ("agent.core.transcript",),
    "agent.parse": ("agent.core.parse",),
    "agent.grammar": ("agent.core.grammar",),
    "agent.turn": ("agent.core.turn", "agent.core.settings"),
    "agent.graph": ("agent.core.graph", "agent.core.settings", "agent.core.policy"),
    "agent.grading": ("agent.core.grading",),
    "agent.model": ("agent.models.protocol", "agent.models.llama_cpp", "agent.models.sources"),
    "agent.openai_model": ("agent.models.openai",),
    "agent.evaluation": ("agent.workloads.evaluation",),
    "agent.batch": ("agent.workloads.batch",),
    "agent.workflow": ("agent.workloads.workflow",),
    "agent.bench": ("agent.workloads.bench", "agent.workloads.model_bench"),
    "agent.doctor": ("agent.workloads.doctor",),
    "agent.view": ("agent.ui.view", "agent.ui.mathtext", "agent.ui.timing"),
    "agent.trace": ("agent.ui.trace", "agent.ui.trace_html"),
    "agent.drawing": ("agent.ui.drawing",),
}
"""Each old module path, and the modules its names now live in (looked up in this order)."""


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of `MOVED` and makes each a module that forwards to the new ones."""

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        return importlib.machinery.ModuleSpec(name, self) if name in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return forwarding(spec.name, MOVED[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def forwarding(name: str, targets: Sequence[str]) -> types.ModuleType:
    """A module named `name` whose attributes are those of the `targets` modules, first found first."""
    module = types.ModuleType(name, f"Moved: see {', '.join(targets)}.")

    def __getattr__(attribute: str) -> Any:
        for target in targets:
            found = importlib.import_module(target)
            if hasattr(found, attribute):
                return getattr(found, attribute)
        raise AttributeError(f"module {name!r} has no attribute {attribute!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def install() -> None:
    """Let the old paths resolve (once per process)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
