"""Tools the agent can call: the registry, the `@tool` decorator and the built-in tools.

Built-in tools live in their own modules and are imported lazily by `default_tools`, so that
`from tools import tool` stays cheap for programs that bring their own.
"""

from tools.registry import ArgumentError, Registry, Tool, ToolError, tool

__all__ = ["ArgumentError", "Registry", "Tool", "ToolError", "default_tools", "tool"]


def default_tools() -> list[Tool]:
    """The tools an agent gets when it is given none."""
    from tools.calculator import calculator

    return [calculator]
