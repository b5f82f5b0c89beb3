"""Tools from typed functions: derived schemas, refusals at registration, argument checks."""

from __future__ import annotations

from typing import Literal

import pytest

from tools import ArgumentError, Registry, ToolError, tool


def convert(value: float, unit: Literal["km", "mi"] = "km", digits: int | None = None) -> str:
    """Convert a distance.

    Longer explanation for the model.

    Args:
        value: The distance.
        unit: The unit to convert to.
        digits: Digits to round to, if any.
    """
    return f"{value} {unit} {digits}"


def test_schema_is_derived_from_hints_and_docstring() -> None:
    t = tool(convert)
    assert t.name == "convert"
    assert t.description == "Convert a distance.\n\nLonger explanation for the model."
    props = t.parameters["properties"]
    assert props["value"] == {"type": "number", "description": "The distance."}
    assert props["unit"]["enum"] == ["km", "mi"] and props["unit"]["default"] == "km"
    assert props["digits"]["description"] == "Digits to round to, if any."
    assert t.parameters["required"] == ["value"]
    assert t.parameters["additionalProperties"] is False
    assert t.schema() == {
        "type": "function",
        "function": {"name": "convert", "description": t.description, "parameters": t.parameters},
    }


def test_invoke_validates_and_coerces() -> None:
    t = tool(convert)
    assert t.invoke({"value": 3, "unit": "mi"}) == "3.0 mi None"
    with pytest.raises(ArgumentError, match=r"value: .*valid number"):
        t.invoke({"value": "three"})
    with pytest.raises(ArgumentError, match="unit"):
        t.invoke({"value": 1, "unit": "furlong"})
    with pytest.raises(ArgumentError, match="color: Extra inputs"):
        t.invoke({"value": 1, "color": "red"})
    with pytest.raises(ArgumentError, match="value: Field required"):
        t.invoke({})
    assert issubclass(ArgumentError, ToolError)  # the graph shows both to the model


def test_options_rename_and_mark_approval() -> None:
    t = tool(name="dist", needs_approval=True)(convert)
    assert (t.name, t.needs_approval) == ("dist", True)


def test_missing_hint_is_refused() -> None:
    def f(x) -> str:
        """Do.

        Args:
            x: A thing.
        """
        return ""

    with pytest.raises(TypeError, match="'x' needs a type hint"):
        tool(f)


def test_missing_argument_doc_is_refused() -> None:
    def f(x: int, y: int) -> str:
        """Do.

        Args:
            x: A thing.
        """
        return ""

    with pytest.raises(TypeError, match="'y' needs an entry under Args"):
        tool(f)


def test_missing_docstring_and_varargs_are_refused() -> None:
    def bare(x: int) -> str:
        return ""

    def star(*xs: int) -> str:
        """Sum.

        Args:
            xs: Numbers.
        """
        return ""

    with pytest.raises(TypeError, match="needs a docstring"):
        tool(bare)
    with pytest.raises(TypeError, match=r"\*args"):
        tool(star)


def test_registry_keeps_order_and_refuses_duplicates() -> None:
    def other(q: str) -> str:
        """Other.

        Args:
            q: Query.
        """
        return q

    registry = Registry([convert, tool(other)])
    assert list(registry) == ["convert", "other"]
    assert [s["function"]["name"] for s in registry.schemas()] == ["convert", "other"]
    with pytest.raises(ValueError, match="two tools are named 'other'"):
        registry.add(other)


def test_non_string_results_are_stringified() -> None:
    def count(items: list[str]) -> int:
        """Count.

        Args:
            items: Things.
        """
        return len(items)

    assert tool(count).invoke({"items": ["a", "b"]}) == "2"
