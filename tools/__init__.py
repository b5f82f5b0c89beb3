"""Tools the agent can call: the registry, the `@tool` decorator and the built-in tools.

Built-in tools live in their own modules and are imported lazily by `default_tools`, so that
`from tools import tool` stays cheap for programs that bring their own.
"""

import dataclasses
import importlib
from collections.abc import Iterable

from tools.registry import ArgumentError, Registry, Tool, ToolError, tool

__all__ = ["ArgumentError", "Registry", "Tool", "ToolError", "default_tools", "tool"]


BUILTIN = {
    "calculator": ("tools.calculator", "calculator"),
    "python": ("tools.sandbox", "python"),
    "web_search": ("tools.search", "web_search_tool"),
    "read_page": ("tools.web", "read_page_tool"),
}
"""The built-in tools by name, and where each lives (imported only when chosen)."""
RUNS_CODE = ("python",)
"""The built-in tools that run model-written code: their `Tool.runs_code` flag is set here."""
NETWORK = ("web_search", "read_page")
"""The built-in tools that go online."""


def default_tools(names: Iterable[str] | None = None) -> list[Tool]:
    """Built-in tools by name, in the order given; all of them when `names` is None."""
    chosen = list(BUILTIN if names is None else names)
    unknown = [n for n in chosen if n not in BUILTIN]
    if unknown:
        raise ValueError(f"no built-in tool named {', '.join(unknown)}; the tools are: {', '.join(BUILTIN)}")
    found = [getattr(importlib.import_module(BUILTIN[n][0]), BUILTIN[n][1]) for n in chosen]
    return [dataclasses.replace(t, runs_code=True) if n in RUNS_CODE else t for n, t in zip(chosen, found, strict=True)]
