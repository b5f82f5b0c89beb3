"""How an agent is configured: `Settings`, with its `Budget` and reasoning `Controls`.

One frozen options object is the single source of every agent option. The facade builds it
(`Agent(settings, **options)`), the graph reads it, the command line derives its flags from the
fields that carry an `option(...)` (help, metavar, bounds), and a workflow step accepts any
option by name. `Settings.with_options(max_steps=2, hint="...")` lays options over settings by
their flat names, whichever dataclass holds them; `check_option` says what is wrong with a value.

Nothing here runs anything or reads a model: defaults that depend on the model or the tools
(the system prompt, the few-shot example, `tool_choice`, the hint text) are left None here and
resolved by the facade.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from agent.core.transcript import THINK_CLOSE, Message
from agent.models.families import FAMILIES

Approval = Literal["auto", "always", "never"]
"""When a person approves a call. auto: every call of a tool marked `needs_approval`, and code
execution once untrusted text (the web) has entered the episode; always: also every code
execution; never: nothing asks (trusted scripts, batches)."""

ToolChoice = Literal["auto", "required", "none"] | str


def option(
    help: str, *, flag: str | None = None, metavar: str | None = None, positive: bool = False,
    choices: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Field metadata that offers a field on the command line (workflow steps take every option).

    `flag` defaults to the field's name in dashes; `positive` asks for a number above zero;
    `choices` maps the words the command line takes to the values they stand for.
    """
    return {"option": {"help": help, "flag": flag, "metavar": metavar, "positive": positive, "choices": choices}}


@dataclass(frozen=True)
class Budget:
    """Limits on one episode; reaching any of them asks the model for its final answer."""

    max_steps: int = field(default=8, metadata=option("reasoning steps", metavar="N", positive=True))
    """Reasoning steps (assistant turns) before the final one."""
    max_tokens: int = field(default=4096, metadata=option("tokens generated per question", metavar="N", positive=True))
    """Tokens generated across the episode, reasoning included."""
    max_seconds: float | None = field(
        default=None, metadata=option("wall time per question", metavar="S", positive=True)
    )
    """Wall time for the episode."""
    max_tool_seconds: float | None = field(
        default=None, metadata=option("time in tools per question", metavar="S", positive=True)
    )
    """Wall time spent inside tools."""
    final_tokens: int = 512
    """Tokens allowed for the forced final answer."""


@dataclass(frozen=True)
class Controls:
    """How a reasoning model's thought is bounded, extended and nudged. All off by default."""

    thinking_budget: int | None = field(
        default=None, metadata=option("thinking tokens per question", metavar="N", positive=True)
    )
    """Thinking tokens for the whole episode; reaching it closes the thought."""
    step_thinking_budget: int | None = field(
        default=None, metadata=option("thinking tokens per step", metavar="N", positive=True)
    )
    """Thinking tokens for any one step."""
    min_thinking: int = field(default=0, metadata=option('extend shorter thoughts with "Wait"', metavar="N"))
    """A thought that ends before this many tokens is extended with `wait_text`."""
    wait_text: str = "Wait"
    """What replaces a closing tag that came too early (s1 uses "Wait")."""
    close_text: str = "\n\nI have to answer now.\n" + THINK_CLOSE + "\n\n"
    """What closes a thought at its budget."""
    answer_tokens: int = 512
    """Tokens left for the answer once a thought is closed at its budget."""
    hint: str | bool | None = field(
        default=None, metadata=option("write a tool hint into the thought on heavy arithmetic (START)", metavar="TEXT")
    )
    """A tool hint to write into the thought (START): its text, or True for START's own hint naming
    the best tool at hand; None or False: no hints."""
    hint_after: int | None = field(
        default=None, metadata=option("hint after N thinking tokens without a tool", metavar="N", positive=True)
    )
    """Give the hint after this many thinking tokens without a tool call."""
    hint_on_arithmetic: bool = True
    """Give the hint when the thought multiplies or divides multi-digit numbers."""
    calls_in_reasoning: Literal["execute", "ignore"] | None = field(
        default=None,
        metadata=option("what a tool call inside the thought does (default: as the model's template expects)"),
    )
    """A `<tool_call>` inside the thought: run it, or leave it as text. None: as the model's
    chat template expects (QwQ's renders calls after the thought, so: ignore)."""


@dataclass(frozen=True)
class Settings:
    """Everything that decides how an agent prompts, constrains and runs its model."""

    system_prompt: str | None = None
    """The system message (the tool list is appended to it as QwQ's template does); None:
    prompts/system.md."""
    examples: tuple[Message, ...] | None = None
    """Few-shot messages placed before the first question; None: the one-shot example of
    prompts/one_shot.json when every tool it calls is among the agent's tools."""
    tool_choice: ToolChoice | None = field(
        default=None,
        metadata=option(
            "auto, required, none, or a tool name (default: auto for reasoning models, required for instruct models)",
            metavar="CHOICE",
        ),
    )
    """auto: the model decides; required: the first step must call a tool; none: no tools; a tool's
    name: the first step must call that tool. None: auto for reasoning models, required for plain
    instruct models, which seldom call on their own."""
    reasoning: bool | None = field(
        default=None,
        metadata=option(
            "whether the model reasons in <think> (default: from its chat template)",
            flag="--thinking",
            choices={"auto": None, "on": True, "off": False},
        ),
    )
    """Force `<think>` mode on or off; None: as the model says (its chat template)."""
    chat_format: str | None = field(
        default=None,
        metadata=option(
            "the model's chat format (default: detected from its chat template)",
            metavar="NAME",
            choices={name: name for name in FAMILIES},
        ),
    )
    """The chat format to render and parse with (`agent.core.formats`); None: the family the model's
    chat template belongs to."""
    reasoning_effort: Literal["low", "medium", "high"] | None = field(
        default=None, metadata=option("gpt-oss: how hard it thinks (its system message's Reasoning:)", metavar="LEVEL")
    )
    """gpt-oss's `Reasoning: low|medium|high`; None: its template's default, medium."""
    budget: Budget = Budget()
    """The episode's limits."""
    controls: Controls = Controls()
    """Thinking budgets, "Wait" extension, tool hints, calls inside the thought."""
    verify: bool = field(default=False, metadata=option("have the agent check its answer with the tools"))
    """After the first answer, ask the model to check it with the tools, then answer again."""
    samples: int = field(default=1, metadata=option("majority answer of K episodes", metavar="K", positive=True))
    """Independent episodes per question; the majority answer wins (self-consistency)."""
    approval: Approval = field(
        default="auto",
        metadata=option(
            "when a person approves calls: auto (marked tools; code after web text), always (also all code), never",
            flag="--approve",
        ),
    )
    """When a call waits for a person first (see `Approval`)."""

    def with_options(self, **options: Any) -> Settings:
        """These settings with `options` laid over them, each named as its field is, in whichever
        of `Settings`, `Budget` and `Controls` it lives (`max_steps`, `hint`, `verify`, ...).

        An option given here always wins, even when it equals the default; `budget=` and
        `controls=` replace those objects first, then single fields go over them. Raises
        TypeError for a name that is no option.
        """
        unknown = sorted(set(options) - set(OPTIONS) - {"budget", "controls"})
        if unknown:
            raise TypeError(f"unknown option {', '.join(unknown)}; the options are: {', '.join(OPTIONS)}")
        whole = {k: options[k] for k in ("budget", "controls") if k in options}
        settings = replace(self, **whole)
        parts: dict[type, dict[str, Any]] = {}
        for name, value in options.items():
            if name in OPTIONS:
                parts.setdefault(OPTIONS[name].owner, {})[name] = normalized(name, value)
        budget = replace(settings.budget, **parts.get(Budget, {}))
        controls = replace(settings.controls, **parts.get(Controls, {}))
        return replace(settings, **parts.get(Settings, {}), budget=budget, controls=controls)

    def flat(self) -> dict[str, Any]:
        """Every option's value by its flat name."""
        holders = {Settings: self, Budget: self.budget, Controls: self.controls}
        return {name: getattr(holders[o.owner], name) for name, o in OPTIONS.items()}


@dataclass(frozen=True)
class Option:
    """One option: a field of `Settings`, `Budget` or `Controls`, by its flat name."""

    name: str
    """Its name, unique across the three."""
    owner: type
    """The dataclass that holds it."""
    types: tuple[type, ...]
    """The plain types its values may have (`float` options take ints too)."""
    words: tuple[Any, ...]
    """The values of a `Literal` among its types (`"auto"`, `"execute"`, ...)."""
    default: Any
    """Its default value."""
    cli: dict[str, Any] | None
    """What `option(...)` said of it (help, flag, metavar, positive, choices), or None when the
    command line does not offer it."""

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this option (a phrase), or None if it fits."""
        if value in self.words or (value is None and type(None) in self.types):
            return None
        fits = isinstance(value, self.types) and (bool in self.types or not isinstance(value, bool))
        if not fits:
            return f"must be {self.expected()}, not {value!r}"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (self.cli or {}).get("positive") and number and value <= 0:
            return f"must be a number above zero, not {value!r}"
        if number and value < 0:  # no budget, count or limit is negative
            return f"must be zero or more, not {value!r}"
        return None

    def expected(self) -> str:
        """What a value must be, in words."""
        kinds = set(self.types) - {type(None)}
        if self.words:
            return "one of " + ", ".join(map(str, self.words)) + (", or a name" if str in kinds else "")
        if kinds <= {int, float}:
            if (self.cli or {}).get("positive"):
                return "a number above zero"
            return "a number" if float in kinds else "a whole number"
        return {frozenset({bool}): "true or false", frozenset({str}): "text"}.get(frozenset(kinds), "text or true")


def _options() -> dict[str, Option]:
    found: dict[str, Option] = {}
    for owner in (Settings, Budget, Controls):
        hints = typing.get_type_hints(owner)
        for f in dataclasses.fields(owner):
            if f.name in ("budget", "controls"):
                continue
            hint = hints[f.name]
            parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
            words = tuple(w for p in parts if typing.get_origin(p) is Literal for w in typing.get_args(p))
            plain = tuple(typing.get_origin(p) or p for p in parts if typing.get_origin(p) is not Literal)
            plain += (int,) if float in plain else ()
            found[f.name] = Option(f.name, owner, plain, words, f.default, f.metadata.get("option"))
    return found


def normalized(name: str, value: Any) -> Any:
    """The value an option stands for: `reasoning="auto"` is None, `hint=False` is None."""
    if name == "reasoning" and value == "auto":
        return None
    if name == "hint" and value is False:
        return None
    if name == "examples" and value is not None:
        return tuple(value)
    return value


def check_option(name: str, value: Any) -> str | None:
    """What is wrong with `value` for the option `name` (a phrase), or None if it fits."""
    if name not in OPTIONS:
        return f"no option {name!r}"
    return OPTIONS[name].problem(value)


def tool_choice_problem(choice: ToolChoice | None, tools: list[str]) -> str | None:
    """What is wrong with `tool_choice=choice` for an agent with these tools (a phrase), or None."""
    if choice in (None, "auto", "none") or choice in tools:
        return None
    if not tools:
        return f"{choice!r} needs a tool, and there are none (choose auto or none)"
    if choice == "required":
        return None
    return f"{choice!r} is none of the tools; choose one of: " + ", ".join(["auto", "required", "none", *tools])


OPTIONS: dict[str, Option] = _options()
"""Every option by its flat name, in the order of the dataclasses' fields."""
