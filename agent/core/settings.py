"""How an agent is configured: `Settings`, with its `Budget` and reasoning `Controls`.

One frozen options object, the single source of every option: the facade builds it, the graph
reads it, and the command line derives its flags from its fields. Nothing here runs anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agent.core.transcript import THINK_CLOSE, Message

Approval = Literal["auto", "always", "never"]
"""When a person approves a call. auto: every call of a tool marked `needs_approval`, and code
execution once untrusted text (the web) has entered the episode; always: also every code
execution; never: nothing asks (trusted scripts, batches)."""

ToolChoice = Literal["auto", "required", "none"] | str


@dataclass(frozen=True)
class Budget:
    """Limits on one episode; reaching any of them asks the model for its final answer."""

    max_steps: int = 8
    """Reasoning steps (assistant turns) before the final one."""
    max_tokens: int = 4096
    """Tokens generated across the episode, reasoning included."""
    max_seconds: float | None = None
    """Wall time for the episode."""
    max_tool_seconds: float | None = None
    """Wall time spent inside tools."""
    final_tokens: int = 512
    """Tokens allowed for the forced final answer."""


@dataclass(frozen=True)
class Controls:
    """How a reasoning model's thought is bounded, extended and nudged. All off by default."""

    thinking_budget: int | None = None
    """Thinking tokens for the whole episode; reaching it closes the thought."""
    step_thinking_budget: int | None = None
    """Thinking tokens for any one step."""
    min_thinking: int = 0
    """A thought that ends before this many tokens is extended with `wait_text`."""
    wait_text: str = "Wait"
    """What replaces a closing tag that came too early (s1 uses "Wait")."""
    close_text: str = "\n\nI have to answer now.\n" + THINK_CLOSE + "\n\n"
    """What closes a thought at its budget."""
    answer_tokens: int = 512
    """Tokens left for the answer once a thought is closed at its budget."""
    hint: str | None = None
    """A tool hint to write into the thought (START); None disables hints."""
    hint_after: int | None = None
    """Give the hint after this many thinking tokens without a tool call."""
    hint_on_arithmetic: bool = True
    """Give the hint when the thought multiplies or divides multi-digit numbers."""
    calls_in_reasoning: Literal["execute", "ignore"] | None = None
    """A `<tool_call>` inside the thought: run it, or leave it as text. None: as the model's
    chat template expects (QwQ's renders calls after the thought, so: ignore)."""


@dataclass(frozen=True)
class Settings:
    """How an agent prompts and constrains its model."""

    system_prompt: str
    """The system message; the tool list is appended to it as QwQ's template does."""
    examples: tuple[Message, ...] = ()
    """Few-shot messages placed before the first question."""
    tool_choice: ToolChoice = "auto"
    """auto: the model decides; required: the first step must call a tool; none: no tools;
    a tool's name: the first step must call that tool."""
    budget: Budget = Budget()
    """The episode's limits."""
    reasoning: bool | None = None
    """Force `<think>` mode on or off; None: as the model says (its chat template)."""
    controls: Controls = field(default_factory=Controls)
    """Thinking budgets, "Wait" extension, tool hints, calls inside the thought."""
    verify: bool = False
    """After the first answer, ask the model to check it with the tools, then answer again."""
