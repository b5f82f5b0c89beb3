"""The model's side of `qwq-agent bench`: driven episodes and generation speed, side by side.

Token counts are counts, not timings: `episodes` drives chat turns of 8 tool steps on two
interleaved sessions and reads the agent's own statistics (`prefill_reuse_ratio`), and
`naive_replay` replays the very same steps the usual way (each step's conversation re-rendered
as text, reasoning dropped as chat templates do, re-tokenized, one shared cache) through
llama.cpp's longest-prefix rule (`prefill_naive_ratio`). Timings are ratios of two measurements
taken alternately on the same model: time to first token at step 8 against step 1, generation
through the agent against a raw llama-cpp-python loop, a constrained call against free text,
prompt-lookup decoding against plain greedy decoding.

The embedded SmolLM2 exercises the machinery, not reasoning, so the episodes are driven: a
wrapper (`Driven`) hands the model a grammar that writes one `lookup` call with a new key for the
first steps of each turn, so that every step really calls a tool (and the loop breaker sees no
repetition), then lets it answer. This module measures; it changes nothing in the agent.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.models.protocol import Generation, Piece, common_prefix

STEPS = 8
"""Tool steps per driven turn."""

PASSAGE = (
    "The append-only transcript keeps every token the model generated exactly as it was sampled, so "
    "llama.cpp finds the whole conversation in its cache and evaluates only what is new: the tool's "
    "observation and the opening of the next turn. Tool output is data, never structure: observations are "
    "tokenized without special tokens, and text that would forge the transcript is neutralized. Reasoning "
    "runs free; once the model opens a tool call, the JSON body is generated under a grammar derived from "
    "the tools' schemas, so every call parses."
)
"""Text the prompt-lookup measurement asks the model to copy."""


@dataclass
class Request:
    """One `generate` request seen by `Driven`: its prompt, what it sampled, and when."""

    session: int
    prompt: list[int]
    first_of_step: bool
    sampled: list[int] = field(default_factory=list)
    started: float = 0.0
    first_piece: float | None = None
    last_piece: float | None = None


class Driven:
    """A `Model` around a real one that makes the next `force` steps call a tool.

    A step's first `generate` without a grammar gets `grammar` (which writes `<tool_call>` and a
    call, `KEY` replaced by a new number) while `force` lasts, and the agent's own call grammar
    is swapped for `opened`; later steps run free with at most `answer_tokens` tokens. Every
    call is recorded (`calls`) with its prompt, sampled tokens and piece times.
    """

    def __init__(
        self,
        model: Any,
        grammar: str | None = None,
        opened: str | None = None,
        *,
        answer_tokens: int = 24,
        call_tokens: int = 40,
    ) -> None:
        self.inner = model
        self.opened = opened
        self.call_tokens = call_tokens
        self.name, self.thinking, self.context_size = model.name, model.thinking, model.context_size
        self.sampling, self.chat_template, self.seed = model.sampling, model.chat_template, model.seed
        self.parallel = False
        self.grammar = grammar
        self.answer_tokens = answer_tokens
        self.force = 0
        self.key = 0
        self.session = 0
        self.calls: list[Request] = []

    def tokenize(self, text: str, special: bool) -> list[int]:
        return list(self.inner.tokenize(text, special))

    def reseed(self, seed: int) -> None:
        self.inner.reseed(seed)

    def describe(self) -> dict[str, Any]:
        return dict(self.inner.describe())

    def preamble(self, tokens: Sequence[int]) -> None:
        remember = getattr(self.inner, "preamble", None)
        if remember is not None:
            remember(tokens)

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        first = grammar is None
        if first and self.grammar is not None and self.force > 0:
            self.force -= 1
            self.key += 1  # a new argument each step: the loop breaker stops repeated calls
            grammar = self.grammar.replace("KEY", str(self.key))
        elif grammar is not None and self.opened is not None:
            # one call per step: a tiny model would chain calls forever
            grammar = self.opened.replace("KEY", str(self.key))
        # A call is capped too: a runaway number or string would only make the run longer.
        max_tokens = min(max_tokens, self.answer_tokens if grammar is None else self.call_tokens)
        call = Request(self.session, list(prompt), first, started=time.perf_counter())
        self.calls.append(call)
        generation = self.inner.generate(prompt, max_tokens=max_tokens, grammar=grammar)
        generation.pieces = self._timed(generation.pieces, call)
        return generation  # the same object: `reused`/`evaluated` are filled in as the model goes

    @staticmethod
    def _timed(pieces: Iterator[Piece], call: Request) -> Iterator[Piece]:
        try:
            for piece in pieces:
                now = time.perf_counter()
                if call.first_piece is None:
                    call.first_piece = now
                call.last_piece = now
                if not piece.end:
                    call.sampled.append(piece.token)
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()


def lookup_tool() -> Any:
    """A tool that answers at once with a short, varying observation."""
    from tools import tool

    @tool
    def lookup(key: int) -> str:
        """Look up the value stored under a key.

        Args:
            key: The key, a whole number.
        """
        return f"value {key % 97} (entry {key})"

    return lookup


# ---------------------------------------------------------------------------------------------
# Episodes on the real model: prefill reuse, the naive replay, time to first token


QUESTIONS = (
    "Look up keys 1 to 8, one call each, then add the values.",
    "Now look up keys 11 to 18 the same way and give the total.",
    "Look up keys 21 to 28, one call each, and report the largest value.",
    "Again with keys 31 to 38.",
    "One more time, keys 41 to 48.",
    "And the last time, keys 51 to 58.",
)


def episodes(model: Any, quick: bool, chat_format: str | None = None) -> dict[str, Any]:
    """Chat turns of `STEPS` tool steps on two sessions of one model, interleaved.

    `chat_format` renders the transcript in another family's format (`--chat-format`).

    Order: A1, A2 (a second turn), B1 (another session takes the model), A3 (A comes back),
    B2, B3; quick mode stops after B1. Returns the agent's token counts, the naive replay's, and
    time to first token per step of the warm turns (A2, and B3 in full mode: no session switch).
    """
    from agent.api import Agent

    tool = lookup_tool()
    driven = Driven(model, single_call_grammar(opened=False), single_call_grammar(opened=True))
    agent = Agent(
        driven, [tool], examples=(), tool_choice="auto", max_steps=STEPS, max_tokens=4096, chat_format=chat_format
    )
    chats = {0: agent.chat(), 1: agent.chat()}
    # (session, question): A1 A2 B1 A3 B2 B3; A2 and B3 follow a turn of their own session (warm)
    order = [(0, 0), (0, 1), (1, 2)] + ([] if quick else [(0, 3), (1, 4), (1, 5)])
    turns = []
    for session, q in order:
        driven.session, driven.force = session, STEPS
        first_call = len(driven.calls)
        result = chats[session].send(QUESTIONS[q])
        turns.append((session, result, driven.calls[first_call:]))
    new = sum(r.usage.prompt_tokens for _, r, _ in turns)
    evaluated = sum(r.usage.prompt_evaluated for _, r, _ in turns)
    tool_steps = [sum(1 for c in r.tool_calls if not c.error) for _, r, _ in turns]
    ttft = [_ttft_steps(turns[k][2]) for k in ((1,) if quick else (1, 5))]
    warm = turns[1][2]
    flatness = ttft_side_by_side(model, driven.calls[driven.calls.index(warm[0]) - 1], warm, 3 if quick else 7)
    return {
        "new": new,
        "evaluated": evaluated,
        "naive_evaluated": naive_replay(model, driven.calls),
        "tool_steps": tool_steps,
        "ttft_steps_s": ttft,
        "ttft_flatness": flatness,
        "turns": len(turns),
    }


def single_call_grammar(*, opened: bool) -> str:
    """A grammar for one call of `lookup` with the key `KEY` (replaced per step), in the template's layout."""
    body = '\\n{\\"name\\": \\"lookup\\", \\"arguments\\": {\\"key\\": KEY}}\\n</tool_call>'
    return f'root ::= "{body}"' if opened else f'root ::= "<tool_call>{body}"'


def _ttft_steps(calls: Sequence[Request]) -> list[float]:
    """Seconds from each step's first `generate` call to its first piece."""
    return [c.first_piece - c.started for c in calls if c.first_of_step and c.first_piece is not None]


def ttft_side_by_side(model: Any, before: Request, turn: Sequence[Request], rounds: int) -> float:
    """Median ratio of time to first token at step 8 to step 1 of a turn, re-timed alternately.

    `before` is the last call before the turn. Each step's first token is timed again from
    the cache that step really had (its prompt minus what it evaluated): step 1, step 8, step
    1, ... so that a machine busy with other work slows both alike.
    """
    llm, s = model.llm, model.sampling
    starts = [c for c in turn if c.first_of_step]
    previous = {id(starts[0]): before}
    for call, earlier in zip(turn[1:], turn, strict=False):
        previous.setdefault(id(call), earlier)
    cases = []
    for step in (starts[0], starts[STEPS - 1]):
        last = previous[id(step)]
        cases.append((step.prompt, common_prefix(last.prompt + last.sampled[:-1], step.prompt)))

    def first_token(prompt: list[int], keep: int) -> float:
        cached = llm.input_ids[: llm.n_tokens].tolist()
        llm.n_tokens = common_prefix(cached, prompt[:keep])
        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        llm.eval(prompt[llm.n_tokens : keep])  # the history the step found cached: not timed
        began = time.perf_counter()
        tokens = llm.generate(prompt, temp=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p)
        next(tokens)
        seconds = time.perf_counter() - began
        tokens.close()
        return seconds

    ratios = []
    for _ in range(rounds):
        one = first_token(*cases[0])
        eight = first_token(*cases[1])
        ratios.append(eight / one)
    return statistics.median(ratios)


_ASSISTANT = re.compile(r"(<\|im_start\|>assistant\n)(.*?)(<\|im_end\|>)", re.DOTALL)


def drop_reasoning(text: str) -> str:
    """What a chat template renders from history: finished assistant turns lose their thought."""
    return _ASSISTANT.sub(lambda m: m.group(1) + m.group(2).split("</think>")[-1].lstrip("\n") + m.group(3), text)


def naive_replay(model: Any, calls: Sequence[Request]) -> int:
    """Prompt tokens llama.cpp would evaluate if each step were re-rendered and re-tokenized.

    Each step's prompt is turned back into text, its finished turns' reasoning is dropped (as a
    chat template does), and the text is tokenized whole; one cache serves every session. The
    count follows llama.cpp's rule: everything after the longest common prefix with the cache is
    evaluated, and a fully cached prompt still replays its last token.
    """
    llm = model.llm
    steps: list[tuple[list[int], list[int]]] = []  # (step prompt, tokens sampled in the step)
    for call in calls:
        if call.first_of_step:
            steps.append((call.prompt, []))
        elif steps:  # a continuation after a grammar switch: its prompt extends the step's
            prompt = steps[-1][0]
            steps[-1] = (prompt, call.prompt[len(prompt) :])
        steps[-1][1].extend(call.sampled)
    cache: list[int] = []
    evaluated = 0
    for prompt, sampled in steps:
        text = llm.detokenize(prompt, special=True).decode("utf-8", errors="replace")
        tokens = model.tokenize(drop_reasoning(text), True)
        shared = common_prefix(cache, tokens)
        shared = shared - 1 if shared == len(tokens) and shared > 0 else shared
        evaluated += len(tokens) - shared
        cache = tokens + sampled
    return evaluated


# ---------------------------------------------------------------------------------------------
# Generation speed: through the agent vs. raw; grammar cost; prompt lookup


def _rate(count: int, first: float | None, last: float | None) -> float:
    if first is None or last is None or last <= first or count < 2:
        return float("nan")
    return (count - 1) / (last - first)


def binding_efficiency(model: Any, tokens: int, rounds: int) -> tuple[float, list[float], list[float]]:
    """Median ratio of generation tokens/s through `Agent.stream` to a raw llama-cpp-python loop.

    Both continue the same prompt for the same number of tokens with the same sampling; the raw
    loop is `Llama.generate` plus `detokenize` per token (what any caller needs to show text).
    """
    from agent.api import Agent

    driven = Driven(model, answer_tokens=tokens)
    agent = Agent(driven, [], examples=(), max_steps=1, max_tokens=tokens)
    llm, s = model.llm, model.sampling
    ratios, agent_rates, raw_rates = [], [], []
    for _ in range(rounds):
        del driven.calls[:]
        for _event in agent.stream("Count from 1 to 300, separated by commas: 1, 2, 3, ..."):
            pass
        call = driven.calls[0]
        count = len(call.sampled)
        agent_rate = _rate(count, call.first_piece, call.last_piece)

        def raw(prompt: list[int] = call.prompt, count: int = count) -> float:
            times: list[float] = []
            for token in llm.generate(
                prompt, temp=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p, repeat_penalty=1.0
            ):
                llm.detokenize([token])
                times.append(time.perf_counter())
                if len(times) >= count:
                    break
            return _rate(len(times), times[0], times[-1])

        raw_rate = raw()
        agent_rates.append(agent_rate)
        raw_rates.append(raw_rate)
        ratios.append(agent_rate / raw_rate)
    return statistics.median(ratios), agent_rates, raw_rates


def grammar_cost(model: Any, free_tokens: int, rounds: int, tools: Sequence[str] = ("calculator", "python")) -> float:
    """Median ratio of tokens/s: free text then a call under the grammar of `tools` (built-in
    tools by name) / the same count free."""
    from agent.core.formats import for_template
    from agent.core.transcript import Message, Segment, Transcript
    from tools import default_tools

    fmt = for_template(model.chat_template)
    schemas = [t.schema() for t in default_tools(tools)]
    grammar = fmt.grammar(schemas, opened=False)
    transcript = Transcript(model.tokenize)
    transcript.extend(
        fmt.render(
            [Message("system", "You are a helpful assistant."), Message("user", "Count from 1 to 300: 1, 2, 3, ...")],
            schemas,
        )
    )
    transcript.extend([Segment(fmt.prompt(transcript.text, thinking=model.thinking)[0], True)])
    prompt = transcript.tokens

    def constrained_step() -> float:
        times: list[float] = []
        free: list[int] = []
        # Each generation is closed explicitly: one left suspended would keep the model locked.
        with closing(model.generate(prompt, max_tokens=free_tokens)) as generation:
            for piece in generation:
                times.append(time.perf_counter())
                if piece.end:
                    break
                free.append(piece.token)
        with closing(model.generate(prompt + free, max_tokens=96, grammar=grammar)) as generation:
            for piece in generation:
                times.append(time.perf_counter())
                if piece.end:
                    break
        counts.append(len(times))
        return _rate(len(times), times[0], times[-1])

    def free_step() -> float:
        plain: list[float] = []
        with closing(model.generate(prompt, max_tokens=counts[-1])) as generation:
            for piece in generation:
                plain.append(time.perf_counter())
                if piece.end:
                    break
        return _rate(len(plain), plain[0], plain[-1])

    counts: list[int] = []
    ratios = [constrained_step() / free_step() for _ in range(rounds)]
    return statistics.median(ratios)


def warm_start(model: Any, rounds: int) -> tuple[float, dict[str, Any]]:
    """Median ratio of a fresh episode's first-step prompt seconds with a saved preamble state / without.

    Each round starts both episodes from an empty cache (as a new process does), with the
    built-in tools' preamble and the agent's one-shot example, alternately: without a prompt
    cache, then with one that an untimed first episode filled. Seconds are from the first
    `generate` call to its first piece.
    """
    import tempfile

    from agent.api import Agent
    from agent.models.prompt_cache import PromptCache
    from tools import default_tools

    driven = Driven(model, answer_tokens=1)
    agent = Agent(driven, default_tools(), max_steps=1, max_tokens=1)
    kept = model.prompt_cache
    seconds: dict[str, list[float]] = {"cold": [], "warm": []}

    def first_step(cache: Any) -> float:
        model.forget()
        model.prompt_cache = cache
        del driven.calls[:]
        agent.run("What is 37 * 89 + 12?")
        call = driven.calls[0]
        assert call.first_piece is not None
        return call.first_piece - call.started

    with tempfile.TemporaryDirectory(prefix="qwq-bench-kv-") as directory:
        cache = PromptCache(directory)
        try:
            first_step(cache)  # fills the cache
            for _ in range(rounds):
                seconds["cold"].append(first_step(None))
                seconds["warm"].append(first_step(cache))
        finally:
            model.prompt_cache = kept
            model.forget()
        saved = sum(f.stat().st_size for f in Path(directory).iterdir())
    ratios = [w / c for w, c in zip(seconds["warm"], seconds["cold"], strict=True)]
    return statistics.median(ratios), {**seconds, "saved_bytes": saved, "preamble_tokens": len(model._preamble)}


def prompt_lookup(model: Any, tokens: int, rounds: int) -> tuple[float, int | None]:
    """Greedy tokens/s with `LlamaPromptLookupDecoding` / without; and where the outputs part.

    The prompt asks the model to copy a passage, the case prompt lookup is for. Each run starts
    from an empty cache, generates exactly `tokens` tokens, and only generation is timed (the
    prefill is the same work). The second value is the index of the first token that differs
    from plain greedy decoding, or None when the outputs are identical.
    """
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    plain = model.llm
    drafted = Llama(
        model_path=str(model.path),
        n_ctx=2048,
        n_threads=plain.n_threads,
        draft_model=LlamaPromptLookupDecoding(num_pred_tokens=10),
        verbose=False,
    )
    prompt = model.tokenize(
        "<|im_start|>system\nYou copy text exactly.<|im_end|>\n<|im_start|>user\n"
        f"Repeat this text word for word:\n\n{PASSAGE}<|im_end|>\n<|im_start|>assistant\n",
        True,
    )

    def run(llm: Any) -> tuple[list[int], float]:
        llm.reset()
        out: list[int] = []
        times: list[float] = []
        for token in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
            times.append(time.perf_counter())
            out.append(token)
            if len(out) >= tokens:
                break
        return out, _rate(len(out), times[0], times[-1])

    speedups: list[float] = []
    diverged: int | None = None
    try:
        for _ in range(rounds):
            a, plain_rate = run(plain)
            b, drafted_rate = run(drafted)
            if a != b:
                diverged = common_prefix(a, b)
            speedups.append(drafted_rate / plain_rate)
    finally:
        drafted.close()
        plain.reset()
    return statistics.median(speedups), diverged
