"""What an episode produces: the `Result`, its `ToolCall`s, and the events streamed on the way.

Plain frozen dataclasses, so they print, compare and serialize (`Result.to_dict`) without
surprises. Nothing here runs a model or a tool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model made and what it got back."""

    name: str
    """The tool the model named (possibly one that does not exist)."""
    arguments: dict[str, Any]
    """The arguments it passed."""
    output: str
    """The observation the model was shown."""
    error: bool = False
    """True when the call failed: bad call, unknown tool, bad arguments or a `ToolError`."""
    seconds: float = 0.0
    """Wall time the tool took."""


@dataclass(frozen=True)
class Verification:
    """What happened when the agent was asked to check its answer (`verify=True`)."""

    first_answer: str
    """The answer before the check."""
    checked_with_tools: bool
    """Whether the model called a tool while checking."""
    confirmed: bool
    """Whether the answer after the check is the same answer (mathematically)."""


@dataclass(frozen=True)
class Votes:
    """Self-consistency over several independent episodes (`samples=k`)."""

    answers: tuple[str | None, ...]
    """Each episode's extracted answer, in order (None: no answer)."""
    share: float
    """Fraction of the episodes that gave the winning answer."""


@dataclass(frozen=True)
class Result:
    """The outcome of one episode (one question, however many steps)."""

    answer: str | None
    """The final answer text, or None if the model gave none within its budgets."""
    reasoning: str
    """Everything the model wrote inside `<think>`, across steps."""
    tool_calls: tuple[ToolCall, ...]
    """Every call, in order."""
    stats: dict[str, Any] = field(default_factory=dict)
    """Counters: steps, prompt tokens evaluated/reused, generated and thinking tokens, seconds."""
    stop_reason: str = "answer"
    """Why the episode ended: "answer", or the budget that ran out ("steps", "tokens", ...)."""
    normalized: str | None = None
    """The answer itself, extracted (`\\boxed{}`, "Final Answer:", the last line) and normalized."""
    verification: Verification | None = None
    """The outcome of `verify=True`."""
    votes: Votes | None = None
    """The vote behind the answer when `samples` > 1."""
    approval: ApprovalRequested | None = None
    """The call waiting for a person when `stop_reason` is "approval" (see `Agent.resume`)."""
    tainted: bool = False
    """Whether text from outside could have steered the episode: a tool marked `untrusted` (web
    search, page reader) was called, successfully or not, in it or earlier in its conversation (or
    in any of the episodes behind a vote). Code then waits for approval under `approval="auto"`."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class ReasoningText:
    """A piece of the model's thought, as it streams."""

    text: str


@dataclass(frozen=True)
class AnswerText:
    """A piece of answer text, as it streams."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    """The model called a tool; the call is about to run."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Observation:
    """What a tool call returned (or why it failed), as the model will read it."""

    call: ToolCall


@dataclass(frozen=True)
class StepFinished:
    """One reasoning step ended: its prompt and generation cost."""

    step: int
    prompt_evaluated: int
    prompt_reused: int
    generated: int


@dataclass(frozen=True)
class ApprovalRequested:
    """The episode is paused until a person approves, edits or declines this call."""

    tool: str
    """The tool the model wants to call."""
    arguments: dict[str, Any]
    """The arguments it wrote."""
    reason: str
    """Why it must be approved: "marked" (the tool asks for it), "code" (every code execution),
    "untrusted" (code in a conversation that called a tool marked untrusted)."""


@dataclass(frozen=True)
class Final:
    """The episode is over."""

    result: Result


Event = ReasoningText | AnswerText | ToolCallStarted | Observation | StepFinished | ApprovalRequested | Final
