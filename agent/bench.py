"""What the agent costs: `qwq-agent bench` measures the figures of the benchmark table in one run.

Every figure that a noisy machine would blur is a ratio of two measurements taken side by side,
alternating, in the same process on the same model (medians over repetitions): the agent's
generation speed against a raw llama-cpp-python loop over the same prompt, a tool-calling step
under the call grammar against the same token count unconstrained, time to first token at step
8 against step 1 (each re-timed from the cache that step really had, alternately), prompt-lookup
decoding against plain greedy decoding. Token counts are counts,
not timings: `prefill_reuse_ratio` comes from the agent's own statistics over five chat turns of
8+ tool steps on two interleaved sessions, and `prefill_naive_ratio` replays the very same steps
the usual way (each step's conversation re-rendered as text, reasoning dropped as chat templates
do, re-tokenized, one shared cache) through llama.cpp's longest-prefix rule.

The embedded SmolLM2 exercises the machinery, not reasoning, so the episodes are driven: a
wrapper (`Driven`) hands the model a grammar that writes one `lookup` call with a new key for the
first steps of each turn, so that every step really calls a tool (and the loop breaker sees no
repetition), then lets it answer. This module measures and reports; it
changes nothing in the agent, and it asserts no targets (`TARGETS` only labels them).
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.model import Generation, Piece, common_prefix

TARGETS: dict[str, tuple[str, float | None, str]] = {
    "prefill_reuse_ratio": ("<=", 1.10, "prompt tokens evaluated / new, 8-step episodes, 2nd turn, 2 sessions"),
    "prefill_naive_ratio": ("report", None, "the same steps re-rendered and re-tokenized, one shared cache"),
    "binding_efficiency": (">=", 0.95, "generation tokens/s through Agent.stream / raw llama-cpp-python loop"),
    "grammar_cost_ratio": (">=", 0.85, "tokens/s of free text + constrained call / unconstrained"),
    "framework_overhead_ms_per_step": ("<=", 1.0, "ms per step with a scripted zero-cost model and a no-op tool"),
    "ttft_flatness": ("<=", 1.5, "time to first token at step 8 / at step 1"),
    "cli_startup_ms": ("<=", 250.0, "median wall time of `qwq-agent --help`"),
    "rss_overhead_mb": ("<=", 200.0, "agent process peak RSS minus the model file size"),
    "sandbox_warm_p50_ms": ("<=", 15.0, "Python sandbox, warm worker, median"),
    "sandbox_cold_p50_ms": ("report", None, "cold `python -c 'import sympy'`, median"),
    "calculator_p50_ms": ("<=", 5.0, "calculator call, warm worker, median"),
    "prompt_lookup_speedup": ("report", None, "greedy generation time plain / with prompt-lookup drafting"),
}
"""Each key's comparison, target and meaning (the issue's table)."""

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
class Call:
    """One `generate` call seen by `Driven`: its prompt, what it sampled, and when."""

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
        self.sampling = model.sampling
        self.grammar = grammar
        self.answer_tokens = answer_tokens
        self.force = 0
        self.key = 0
        self.session = 0
        self.calls: list[Call] = []

    def tokenize(self, text: str, special: bool) -> list[int]:
        return list(self.inner.tokenize(text, special))

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
        call = Call(self.session, list(prompt), first, started=time.perf_counter())
        self.calls.append(call)
        generation = self.inner.generate(prompt, max_tokens=max_tokens, grammar=grammar)
        generation.pieces = self._timed(generation.pieces, call)
        return generation  # the same object: `reused`/`evaluated` are filled in as the model goes

    @staticmethod
    def _timed(pieces: Iterator[Piece], call: Call) -> Iterator[Piece]:
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


def noop_tool() -> Any:
    """A tool that does nothing, for the framework's own overhead."""
    from tools import tool

    @tool
    def noop() -> str:
        """Do nothing and say so."""
        return "ok"

    return noop


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


def episodes(model: Any, quick: bool) -> dict[str, Any]:
    """Chat turns of `STEPS` tool steps on two sessions of one model, interleaved.

    Order: A1, A2 (a second turn), B1 (another session takes the model), A3 (A comes back),
    B2, B3; quick mode stops after B1. Returns the agent's token counts, the naive replay's, and
    time to first token per step of the warm turns (A2, and B3 in full mode: no session switch).
    """
    from agent.api import Agent

    tool = lookup_tool()
    driven = Driven(model, single_call_grammar(opened=False), single_call_grammar(opened=True))
    agent = Agent(driven, [tool], examples=(), tool_choice="auto", max_steps=STEPS, max_tokens=4096)
    chats = {0: agent.chat(), 1: agent.chat()}
    # (session, question): A1 A2 B1 A3 B2 B3; A2 and B3 follow a turn of their own session (warm)
    order = [(0, 0), (0, 1), (1, 2)] + ([] if quick else [(0, 3), (1, 4), (1, 5)])
    turns = []
    for session, q in order:
        driven.session, driven.force = session, STEPS
        first_call = len(driven.calls)
        result = chats[session].send(QUESTIONS[q])
        turns.append((session, result, driven.calls[first_call:]))
    new = sum(r.stats["prompt_tokens"] for _, r, _ in turns)
    evaluated = sum(r.stats["prompt_evaluated"] for _, r, _ in turns)
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


def _ttft_steps(calls: Sequence[Call]) -> list[float]:
    """Seconds from each step's first `generate` call to its first piece."""
    return [c.first_piece - c.started for c in calls if c.first_of_step and c.first_piece is not None]


def ttft_side_by_side(model: Any, before: Call, turn: Sequence[Call], rounds: int) -> float:
    """Median ratio of time to first token at step 8 to step 1 of a turn, re-timed alternately.

    `before` is the last call before the turn. Each step's first token is timed again from
    the cache that step really had (its prompt minus what it evaluated): step 1, step 8, step
    1, ... so that a machine busy with other work slows both alike.
    """
    llm, s = model._llm, model.sampling
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


def naive_replay(model: Any, calls: Sequence[Call]) -> int:
    """Prompt tokens llama.cpp would evaluate if each step were re-rendered and re-tokenized.

    Each step's prompt is turned back into text, its finished turns' reasoning is dropped (as a
    chat template does), and the text is tokenized whole; one cache serves every session. The
    count follows llama.cpp's rule: everything after the longest common prefix with the cache is
    evaluated, and a fully cached prompt still replays its last token.
    """
    llm = model._llm
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


def in_fresh_thread(work: Callable[[], Any]) -> Any:
    """`work()` run in a new thread, as LangGraph runs each node of the agent.

    Measured here: llama.cpp (OpenMP build) generates up to ten times slower in the thread that
    has run it before than in a new one, so baselines run where the agent's generation runs.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def binding_efficiency(model: Any, tokens: int, rounds: int) -> tuple[float, list[float], list[float]]:
    """Median ratio of generation tokens/s through `Agent.stream` to a raw llama-cpp-python loop.

    Both continue the same prompt for the same number of tokens with the same sampling; the raw
    loop is `Llama.generate` plus `detokenize` per token (what any caller needs to show text).
    """
    from agent.api import Agent

    driven = Driven(model, answer_tokens=tokens)
    agent = Agent(driven, [], examples=(), max_steps=1, max_tokens=tokens)
    llm, s = model._llm, model.sampling
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

        raw_rate = in_fresh_thread(raw)
        agent_rates.append(agent_rate)
        raw_rates.append(raw_rate)
        ratios.append(agent_rate / raw_rate)
    return statistics.median(ratios), agent_rates, raw_rates


def grammar_cost(model: Any, free_tokens: int, rounds: int) -> float:
    """Median ratio of tokens/s: free text then a call under the grammar / the same count free."""
    from agent.grammar import tool_call_grammar
    from agent.transcript import Message, Segment, Transcript, assistant_prompt, render
    from tools import default_tools

    schemas = [t.schema() for t in default_tools(["calculator", "python"])]
    grammar = tool_call_grammar(schemas, opened=False)
    transcript = Transcript(model.tokenize)
    transcript.extend(
        render(
            [Message("system", "You are a helpful assistant."), Message("user", "Count from 1 to 300: 1, 2, 3, ...")],
            schemas,
        )
    )
    transcript.extend([Segment(assistant_prompt(model.thinking), True)])
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
    ratios = [in_fresh_thread(constrained_step) / in_fresh_thread(free_step) for _ in range(rounds)]
    return statistics.median(ratios)


def prompt_lookup(model: Any, tokens: int, rounds: int) -> tuple[float, int | None]:
    """Greedy tokens/s with `LlamaPromptLookupDecoding` / without; and where the outputs part.

    The prompt asks the model to copy a passage, the case prompt lookup is for. Each run starts
    from an empty cache, generates exactly `tokens` tokens, and only generation is timed (the
    prefill is the same work). The second value is the index of the first token that differs
    from plain greedy decoding, or None when the outputs are identical.
    """
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    plain = model._llm
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


# ---------------------------------------------------------------------------------------------
# Everything else: the loop's own overhead, start-up, memory, the tools


def zero_cost_model(turns: Sequence[str]) -> Any:
    """A `ScriptedModel` that skips its prefix comparison: it trusts the prompt to extend its cache.

    The scripted model compares each prompt with its cache in Python, a cost of the stand-in,
    not of the framework; this one reports the whole cache as reused without looking.
    """
    from agent.scripted import ScriptedModel

    class ZeroCost(ScriptedModel):
        def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
            reused = min(len(self.cache), len(prompt))
            self.cache = prompt if isinstance(prompt, list) else list(prompt)
            return Generation(reused, len(prompt) - reused, self._play(max_tokens))

    return ZeroCost(turns)


def framework_overhead(steps: int, rounds: int) -> float:
    """Milliseconds per step of an episode on a scripted zero-cost model with a no-op tool."""
    from agent.api import Agent

    call = '<tool_call>\n{"name": "noop", "arguments": {}}\n</tool_call>'
    per_step = []
    for _ in range(rounds):
        model = zero_cost_model([call] * steps + ["done"])
        agent = Agent(model, [noop_tool()], examples=(), max_steps=steps + 1, tool_choice="auto")
        began = time.perf_counter()
        result = agent.run("Call noop until told otherwise.")
        elapsed = time.perf_counter() - began
        per_step.append(elapsed / result.stats["steps"] * 1000)
    return statistics.median(per_step)


def cli_startup(runs: int) -> float:
    """Median milliseconds of `qwq-agent --help` in a fresh process."""
    script = Path(sys.executable).with_name("qwq-agent")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "agent.cli"]
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([*command, "--help"], capture_output=True, check=True)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


RSS_SCRIPT = """
import re, sys
from agent import Agent
agent = Agent(sys.argv[1] if len(sys.argv) > 1 else None, [], max_steps=2, max_tokens=48)
agent.run("What is 2 + 3?")
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""


def rss_overhead(model_path: str | None, model_bytes: int) -> float:
    """Peak RSS of a fresh agent process answering one question, minus the model file, in MB.

    The child reports its own VmHWM: `ru_maxrss` of a child would include this (large) process,
    whose memory the child briefly shares between fork and exec.
    """
    argv = [sys.executable, "-c", RSS_SCRIPT, *([model_path] if model_path else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the RSS probe failed: {done.stderr[-400:]}")
    peak_kib = int(done.stdout.split()[-1])
    return (peak_kib * 1024 - model_bytes) / 1e6


def calculator_p50(calls: int) -> float:
    """Median milliseconds of a warm calculator call on GSM8K-style arithmetic."""
    from tools.calculator import calculate

    calculate("1")  # start the worker outside the timing
    expressions = ["16-3-4", "9*2", "2/2", "2+1", "80000+50000", "3*60", "48/4", "1.5*20", "(5+7)*3", "120*0.25"]
    times = []
    for k in range(calls):
        began = time.perf_counter()
        calculate(expressions[k % len(expressions)])
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def sandbox_available() -> bool:
    """Whether bubblewrap, which the sandbox needs for its isolation, is installed."""
    import shutil

    return shutil.which("bwrap") is not None


def sandbox_figures(runs: int) -> tuple[float, float]:
    """The sandbox's own benchmark: warm and cold medians, in ms."""
    from tools.sandbox import benchmark

    figures = benchmark(runs)
    return figures["warm"] * 1000, figures["cold"] * 1000


# ---------------------------------------------------------------------------------------------
# The whole run


@dataclass(frozen=True)
class Report:
    """One bench run: the figures by key, and what stands behind them."""

    figures: dict[str, float | None]
    """Each key of `TARGETS`; None when it could not be measured (see `notes`)."""
    details: dict[str, Any]
    """Raw measurements behind the ratios (rates, token counts, per-step times)."""
    notes: dict[str, str]
    """Why a figure is missing, or what qualifies it."""

    def to_json(self) -> dict[str, Any]:
        """The `--json` object: the figures at top level, then `details` and `notes`."""
        return {**self.figures, "details": self.details, "notes": self.notes}


def run(
    model_path: str | None = None,
    *,
    quick: bool = False,
    threads: int | None = None,
    n_gpu_layers: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> Report:
    """Measure every figure of `TARGETS`; `quick` repeats less (for tests), it measures all.

    Everything runs off the main thread, and each timed generation in a new thread (see
    `in_fresh_thread`), as the agent's own generation runs in LangGraph's thread pool.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_run, model_path, quick, threads, n_gpu_layers, log).result()


def _run(
    model_path: str | None, quick: bool, threads: int | None, n_gpu_layers: int, log: Callable[[str], None]
) -> Report:
    from agent.model import LlamaCppModel

    rounds = 1 if quick else 3
    figures: dict[str, float | None] = dict.fromkeys(TARGETS)
    details: dict[str, Any] = {"quick": quick, "nproc": os.cpu_count(), "cpu": cpu_model()}
    notes: dict[str, str] = {}

    def measure(keys: str, what: Callable[[], None]) -> None:
        log(f"measuring {keys}")
        try:
            what()
        except Exception as exc:  # one broken figure must not hide the others
            for key in keys.split(", "):
                notes[key] = f"not measured: {type(exc).__name__}: {exc}"

    model = LlamaCppModel(model_path, threads=threads, n_gpu_layers=n_gpu_layers, seed=0)
    details["model"] = model.name
    details["model_bytes"] = model.size_bytes

    def do_episodes() -> None:
        found = episodes(model, quick)
        details["episodes"] = found
        figures["prefill_reuse_ratio"] = round(found["evaluated"] / found["new"], 3)
        figures["prefill_naive_ratio"] = round(found["naive_evaluated"] / found["new"], 3)
        figures["ttft_flatness"] = round(found["ttft_flatness"], 3)

    def do_binding() -> None:
        ratio, agent_rates, raw_rates = binding_efficiency(model, 48 if quick else 160, rounds)
        figures["binding_efficiency"] = round(ratio, 3)
        details["generation_tokens_per_s"] = {"agent": agent_rates, "raw": raw_rates}

    def do_grammar() -> None:
        figures["grammar_cost_ratio"] = round(grammar_cost(model, 24 if quick else 48, rounds), 3)

    def do_lookup() -> None:
        tokens = 48 if quick else 128
        speedup, diverged = prompt_lookup(model, tokens, rounds)
        figures["prompt_lookup_speedup"] = round(speedup, 3)
        details["prompt_lookup_identical"] = diverged is None
        details["prompt_lookup_diverged_at"] = diverged
        if diverged is not None:
            notes["prompt_lookup_speedup"] = (
                f"NOT identical: greedy output departs from plain decoding at token {diverged} of {tokens} "
                "(batched evaluation of draft tokens rounds differently)"
            )

    def do_overhead() -> None:
        figures["framework_overhead_ms_per_step"] = round(framework_overhead(8 if quick else 24, rounds), 3)

    def do_cli() -> None:
        figures["cli_startup_ms"] = round(cli_startup(3 if quick else 9), 1)

    def do_rss() -> None:
        figures["rss_overhead_mb"] = round(rss_overhead(model_path, model.size_bytes), 1)

    def do_sandbox() -> None:
        warm, cold = sandbox_figures(5 if quick else 20)
        figures["sandbox_warm_p50_ms"], figures["sandbox_cold_p50_ms"] = round(warm, 2), round(cold, 1)

    def do_calculator() -> None:
        figures["calculator_p50_ms"] = round(calculator_p50(20 if quick else 200), 3)

    measure("prefill_reuse_ratio, prefill_naive_ratio, ttft_flatness", do_episodes)
    measure("binding_efficiency", do_binding)
    measure("grammar_cost_ratio", do_grammar)
    measure("prompt_lookup_speedup", do_lookup)
    measure("framework_overhead_ms_per_step", do_overhead)
    measure("cli_startup_ms", do_cli)
    measure("rss_overhead_mb", do_rss)
    measure("sandbox_warm_p50_ms, sandbox_cold_p50_ms", do_sandbox)
    measure("calculator_p50_ms", do_calculator)
    details["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return Report(figures, details, notes)


def verdict(key: str, value: float | None) -> str:
    """ "ok", "MISS", "report" (no target) or "n/a" (not measured)."""
    op, target, _ = TARGETS[key]
    if value is None:
        return "n/a"
    if target is None:
        return "report"
    return "ok" if (value <= target if op == "<=" else value >= target) else "MISS"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def table(report: Report) -> Any:
    """A rich Table: key, measured, target, verdict, meaning."""
    from rich.table import Table

    out = Table(title="qwq-agent bench", title_justify="left")
    for column, justify in (
        ("key", "left"),
        ("measured", "right"),
        ("target", "right"),
        ("", "left"),
        ("what", "left"),
    ):
        out.add_column(column, justify=justify)  # type: ignore[arg-type]
    for key, (op, target, what) in TARGETS.items():
        value = report.figures[key]
        shown = "–" if value is None else f"{value:g}"
        aim = "report" if target is None else f"{op} {target:g}"
        mark = verdict(key, value)
        style = {"ok": "green", "MISS": "bold red"}.get(mark, "")
        out.add_row(key, shown, aim, f"[{style}]{mark}[/{style}]" if style else mark, report.notes.get(key, what))
    return out


def command(args: Any) -> int:
    """`qwq-agent bench [--json] [--quick] [--model PATH]`."""
    import json

    from rich.console import Console

    console = Console(stderr=True)
    report = run(
        args.model,
        quick=args.quick,
        threads=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        log=lambda message: console.print(f"[dim]{message}[/dim]"),
    )
    if args.json:
        console.print(table(report))
        print(json.dumps(report.to_json()))
    else:
        Console().print(table(report))
    return 0


def markdown(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table (key, measured, target, verdict), for a README."""
    lines = ["| key | measured | target | |", "|---|---:|---:|---|"]
    for key, (op, target, _) in TARGETS.items():
        value = figures.get(key)
        shown = "–" if value is None else f"{value:g}"
        aim = "report" if target is None else f"{op} {target:g}"
        lines.append(f"| `{key}` | {shown} | {aim} | {verdict(key, value)} |")
    return "\n".join(lines)
