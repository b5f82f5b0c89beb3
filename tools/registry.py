"""Turn plain typed Python functions into tools the agent can call.

`@tool` reads a function's type hints and Google-style docstring and derives the JSON schema the
model sees; nothing is hand-written, and a function whose parameters lack a hint or an `Args:`
entry is refused at registration. `Tool.invoke` validates the model's arguments against the same
signature before calling. Every string and array argument is bounded in the schema
(`maxLength`, `maxItems`): the call grammar honours those bounds, so a model can never write a
call that runs away. A tool sets its own with `Annotated[str, Field(max_length=...)]`; where it
says nothing, `with_bounds` writes the defaults below into the schema the model is shown.

This module does not run tools in isolation, time them or catch their bugs: the graph decides
what a failure means (see `ToolError`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import docstring_parser
import pydantic

DEFAULT_MAX_LENGTH = 256
"""`maxLength` of a string argument whose tool sets none: a name, a query, a short phrase."""
DEFAULT_MAX_ITEMS = 32
"""`maxItems` of an array argument whose tool sets none."""


def with_bounds(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON schema with every free string and array bounded (defaults above).

    Strings already fixed by `enum`, `const`, `pattern` or `format`, and bounds a schema sets
    itself, are left as they are.
    """
    out = dict(schema)
    kind = out.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    fixed = any(k in out for k in ("enum", "const", "pattern", "format"))
    if "string" in kinds and not fixed:
        out.setdefault("maxLength", DEFAULT_MAX_LENGTH)
    if "array" in kinds:
        out.setdefault("maxItems", DEFAULT_MAX_ITEMS)
    for key in ("properties", "$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {k: with_bounds(v) if isinstance(v, dict) else v for k, v in out[key].items()}
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [with_bounds(v) if isinstance(v, dict) else v for v in out[key]]
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = with_bounds(out[key])
    return out


class ToolError(Exception):
    """A fault of the environment (no network, timeout, limit hit) that the model should hear about.

    The graph turns it into an observation; any other exception from a tool is a bug and raises.
    """


class ArgumentError(ToolError):
    """The model called a tool with arguments that do not fit its signature."""


@dataclass(frozen=True)
class Tool:
    """A callable the model may invoke, with the schema it is shown."""

    name: str
    """Name the model writes in `{"name": ...}`."""
    description: str
    """What the tool does, from the docstring's summary and body."""
    parameters: dict[str, Any]
    """JSON schema of the arguments object, derived from the signature."""
    function: Callable[..., Any] = field(repr=False)
    """The plain function behind the tool."""
    needs_approval: bool = False
    """Whether a person must approve each call (code execution, for instance)."""
    untrusted: bool = False
    """Whether its output is text from outside (the web) that may try to steer the model."""
    runs_code: bool = False
    """Whether it runs code the model wrote (isolated, but text from the web could steer it)."""
    prepare: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    """Begins a slow start in the background (a process that imports a library) and returns at
    once, never raising; an agent calls it when it is built, so the first call waits less."""
    _model: type[pydantic.BaseModel] = field(repr=False, compare=False, default=pydantic.BaseModel)

    def schema(self) -> dict[str, Any]:
        """The OpenAI/Hermes function entry, as listed inside `<tools>` in the system prompt."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def invoke(self, arguments: Mapping[str, Any]) -> str:
        """Validate `arguments` and call the function; the result is the observation text.

        Raises `ArgumentError` when the arguments do not fit, `ToolError` when the tool reports a
        fault of its environment; any other exception is a bug of the tool and propagates.
        """
        try:
            parsed = self._model.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ArgumentError(f"bad arguments for {self.name}: {problems}") from None
        for name, prop in self.parameters.get("properties", {}).items():
            # The defaults `with_bounds` wrote are bounds too, though the signature does not say so.
            value, most = arguments.get(name), prop.get("maxLength", prop.get("maxItems"))
            if isinstance(value, str | list) and most is not None and len(value) > most:
                raise ArgumentError(f"bad arguments for {self.name}: {name}: longer than {most}")
        result = self.function(**{name: getattr(parsed, name) for name in type(parsed).model_fields})
        return result if isinstance(result, str) else str(result)


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, needs_approval: bool = False, untrusted: bool = False, runs_code: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    needs_approval: bool = False,
    untrusted: bool = False,
    runs_code: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a tool of a typed function with a Google-style docstring.

    Usable bare (`@tool`) or with options (`@tool(name="calc", needs_approval=True)`); mark tools
    that return outside text (web pages, search results) `untrusted=True`, and tools that run
    model-written code `runs_code=True` (approval rules read these flags, never tool names).
    Raises `TypeError` when a parameter lacks a type hint or an `Args:` description, or the
    function has no docstring: the model could not use it well.
    """

    def build(fn: Callable[..., Any]) -> Tool:
        tool_name = name or fn.__name__
        doc = docstring_parser.parse(inspect.getdoc(fn) or "")
        description = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p)
        if not description:
            raise TypeError(f"tool {tool_name!r}: the function needs a docstring saying what it does")
        arg_docs = {p.arg_name: p.description for p in doc.params}
        hints = inspect.get_annotations(fn, eval_str=True)
        fields: dict[str, Any] = {}
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"tool {tool_name!r}: *args and **kwargs cannot be described to a model")
            if param.name not in hints:
                raise TypeError(f"tool {tool_name!r}: parameter {param.name!r} needs a type hint")
            if not arg_docs.get(param.name):
                raise TypeError(f"tool {tool_name!r}: parameter {param.name!r} needs an entry under Args:")
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hints[param.name], pydantic.Field(default, description=arg_docs[param.name]))
        model = pydantic.create_model(
            f"{tool_name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        parameters = model.model_json_schema()
        parameters.pop("title", None)
        for prop in parameters.get("properties", {}).values():
            prop.pop("title", None)
        parameters = with_bounds(parameters)
        return Tool(tool_name, description, parameters, fn, needs_approval, untrusted, runs_code, _model=model)

    return build if function is None else build(function)


class Registry(Mapping[str, Tool]):
    """The tools one agent may call, by name, in the order they are listed to the model."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool | Callable[..., Any]) -> Tool:
        """Register a `Tool` or a plain typed function (made a tool with `@tool`)."""
        made = item if isinstance(item, Tool) else tool(item)
        if made.name in self._tools:
            raise ValueError(f"two tools are named {made.name!r}")
        self._tools[made.name] = made
        return made

    def prepare(self) -> None:
        """Begin each tool's slow start (`Tool.prepare`) in the background."""
        for each in self._tools.values():
            if each.prepare is not None:
                each.prepare()

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """Every tool's function entry, for the system prompt and the call grammar."""
        return [t.schema() for t in self._tools.values()]
