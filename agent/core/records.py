"""What an episode produces: the `Result`, its `ToolCall`s and `Usage`, and the events streamed on the way.

One call shape: a `Call` is a tool's name and arguments as the model wrote them;
`ToolCallStarted` is that call about to run, and a `ToolCall` is that call with what it
returned. One event vocabulary: the parser, the turn, the graph, traces and views all speak in
the events below. Plain frozen dataclasses, so they print, compare and serialize
(`Result.to_dict`) without surprises. Nothing here runs a model or a tool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Call:
    """A tool call as the model wrote it."""

    name: str
    """The tool the model named (possibly one that does not exist)."""
    arguments: dict[str, Any]
    """The arguments it passed."""


@dataclass(frozen=True)
class ToolCall(Call):
    """One tool call the model made and what it got back."""

    output: str
    """The observation the model was shown."""
    error: bool = False
    """True when the call failed: bad call, unknown tool, bad arguments or a `ToolError`."""
    seconds: float = 0.0
    """Wall time the tool took."""
    ours: bool = False
    """The output is our own text (a bad call, a repetition, a refusal), not the tool's: it enters
    the transcript as written, where a tool's output is neutralized as outside text."""


@dataclass(frozen=True)
class StepUsage:
    """What one reasoning step cost, in tokens."""

    prompt_new: int = 0
    """Prompt tokens added since the model last saw the transcript (the question, observations)."""
    prompt_evaluated: int = 0
    """Prompt tokens the model had to evaluate."""
    prompt_reused: int = 0
    """Prompt tokens taken from its cache."""
    generated: int = 0
    """Tokens it generated, thought included."""
    thinking: int = 0
    """Of those, inside `<think>`."""

    def __getitem__(self, key: str) -> Any:
        """`usage.per_step[0]["thinking"]`, as the dicts of earlier versions read."""
        return getattr(self, key)


@dataclass(frozen=True)
class Usage:
    """What an episode (or several) cost; usages add up with `+`."""

    steps: int = 0
    """Reasoning steps, the final one included."""
    tool_calls: int = 0
    """Tool calls made."""
    prompt_tokens: int = 0
    """Prompt tokens added over the steps (`StepUsage.prompt_new`, summed)."""
    prompt_evaluated: int = 0
    """Prompt tokens the model evaluated."""
    prompt_reused: int = 0
    """Prompt tokens taken from its cache."""
    generated_tokens: int = 0
    """Tokens generated, thoughts included."""
    thinking_tokens: int = 0
    """Tokens generated inside `<think>`."""
    time_prefill_s: float = 0.0
    """Seconds until each step's first token, summed."""
    time_generate_s: float = 0.0
    """Seconds of generation after that, summed."""
    time_tools_s: float = 0.0
    """Seconds inside tools."""
    time_total_s: float = 0.0
    """Wall time: model and tools."""
    per_step: tuple[StepUsage, ...] = ()
    """Each step's tokens, in order."""

    def __post_init__(self) -> None:
        if not isinstance(self.per_step, tuple):  # a checkpoint gives lists back
            object.__setattr__(self, "per_step", tuple(self.per_step))

    def __add__(self, other: Usage) -> Usage:
        sums = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        return Usage(**sums)

    @classmethod
    def of_step(cls, step: StepUsage, *, prefill_s: float, seconds: float) -> Usage:
        """The usage of one reasoning step that took `seconds`, `prefill_s` of them before its first token."""
        return cls(
            steps=1,
            prompt_tokens=step.prompt_new,
            prompt_evaluated=step.prompt_evaluated,
            prompt_reused=step.prompt_reused,
            generated_tokens=step.generated,
            thinking_tokens=step.thinking,
            time_prefill_s=prefill_s,
            time_generate_s=seconds - prefill_s,
            time_total_s=seconds,
            per_step=(step,),
        )

    @classmethod
    def of_call(cls, seconds: float) -> Usage:
        """The usage of one tool call that took `seconds`."""
        return cls(tool_calls=1, time_tools_s=seconds, time_total_s=seconds)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        """A usage from its `to_dict` form (or the stats dict of earlier versions); unknown keys are ignored."""
        data = dict(data or {})
        steps = tuple(StepUsage(**_known(StepUsage, s)) for s in data.pop("per_step", ()) or ())
        return cls(**_known(cls, data), per_step=steps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`per_step` a list of dicts)."""
        return asdict(self) | {"per_step": [asdict(s) for s in self.per_step]}

    def __getitem__(self, key: str) -> Any:
        """`usage["steps"]`, as the stats dicts of earlier versions read."""
        return getattr(self, key)


def _known(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)} - {"per_step"}
    return {k: v for k, v in data.items() if k in names}


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
    usage: Usage = Usage()
    """What it cost: steps, prompt tokens evaluated/reused, generated and thinking tokens, seconds."""
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

    @property
    def stats(self) -> dict[str, Any]:
        """`usage` as a dict, as earlier versions gave it."""
        return self.usage.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the usage is under "stats", as traces and results files have it."""
        data = asdict(self)
        return {("stats" if k == "usage" else k): self.usage.to_dict() if k == "usage" else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """The result a `to_dict` dict was written from (a newer one's unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["tool_calls"] = tuple(ToolCall(**c) for c in data.get("tool_calls", ()))
        values["usage"] = Usage.from_dict(data.get("stats"))
        for key, kind in (("verification", Verification), ("approval", ApprovalRequested)):
            if data.get(key):
                values[key] = kind(**data[key])
        if data.get("votes"):
            values["votes"] = Votes(tuple(data["votes"]["answers"]), data["votes"]["share"])
        return cls(**values)


@dataclass(frozen=True)
class PromptRead:
    """The model starts reading a step's prompt: before its first token, which on a slow machine
    comes seconds later (only models that say when they start send it: llama.cpp does)."""

    evaluated: int
    """Prompt tokens it has to evaluate."""
    reused: int
    """Prompt tokens taken from its cache."""
    saved_cache: bool | None = None
    """Whether the reused tokens came from a prompt cache saved earlier (a warm start); None: the
    model does not say."""


@dataclass(frozen=True)
class ReasoningText:
    """A piece of the model's thought, as it streams."""

    text: str


@dataclass(frozen=True)
class AnswerText:
    """A piece of answer text, as it streams."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted(Call):
    """The model called a tool; the call is about to run."""


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


Event = (
    PromptRead | ReasoningText | AnswerText | ToolCallStarted | Observation | StepFinished | ApprovalRequested | Final
)
"""Everything `Agent.stream` yields."""
