"""What the agent costs: `qwq-agent bench` measures the figures of the benchmark table in one run.

Every figure that a noisy machine would blur is a ratio of two measurements taken side by side,
alternating, in the same process on the same model (medians over repetitions); token counts are
exact counts. The model's figures are measured in `agent.workloads.model_bench`; the loop's own
overhead, start-up, memory and the tools' latencies here. `run` returns a `Report`.

This module measures and reports; it changes nothing in the agent, prints nothing (the command
is `agent.cli.bench`), and asserts no targets (`TARGETS` only labels them).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.records import Usage
from agent.models.protocol import Generation
from agent.workloads.model_bench import (
    binding_efficiency,
    episodes,
    grammar_cost,
    prompt_lookup,
    warm_start,
)
from agent.workloads.parallel_bench import parallel_throughput

TARGETS: dict[str, tuple[str, float | None, str]] = {
    "prefill_reuse_ratio": ("<=", 1.10, "prompt tokens evaluated / new, 8-step episodes, 2nd turn, 2 sessions"),
    "prefill_reuse_ratio_qwen3": ("<=", 1.10, "the same, the transcript in Qwen3's chat format (a second family)"),
    "prefill_naive_ratio": ("report", None, "the same steps re-rendered and re-tokenized, one shared cache"),
    "binding_efficiency": (">=", 0.95, "generation tokens/s through Agent.stream / raw llama-cpp-python loop"),
    "grammar_cost_ratio": (">=", 0.95, "tokens/s of free text + constrained call / unconstrained"),
    "warm_start_ratio": ("<=", 0.10, "first-step prompt seconds of a new episode with the saved preamble / without"),
    "parallel_throughput_ratio": (">=", 1.8, "generated tokens/s of 4 concurrent episodes on one in-process model / 1"),
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


def noop_tool() -> Any:
    """A tool that does nothing, for the framework's own overhead."""
    from tools import tool

    @tool
    def noop(n: int) -> str:
        """Do nothing and say so.

        Args:
            n: Which call this is (each call is new: the loop breaker stops repeated ones).
        """
        return f"ok {n}"

    return noop


# ---------------------------------------------------------------------------------------------
# Everything else: the loop's own overhead, start-up, memory, the tools


def zero_cost_model(turns: Sequence[str]) -> Any:
    """A `ScriptedModel` whose own work is done before the clock starts.

    The scripted model compares each prompt with its cache and makes each piece as it plays it,
    costs of the stand-in, not of the framework: this one reports the whole cache as reused
    without looking, and plays pieces made when it is built.
    """
    from itertools import islice

    from agent.models.protocol import Piece
    from agent.models.scripted import ScriptedModel

    class ZeroCost(ScriptedModel):
        def __init__(self) -> None:
            super().__init__(turns)
            self.played = [[*(Piece(ord(c), c) for c in turn), Piece(0, "", end=True)] for turn in turns]
            self.rest: Iterator[Piece] | None = None

        def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
            reused = min(len(self.cache), len(prompt))
            self.cache = prompt if isinstance(prompt, list) else list(prompt)
            return Generation(reused, len(prompt) - reused, self._play(max_tokens))

        def _play(self, max_tokens: int) -> Iterator[Piece]:
            # A generation closed early (a grammar switch) leaves the rest of the turn to the next.
            if self.rest is None:
                self.rest = iter(self.played.pop(0))
            for piece in islice(self.rest, max_tokens):
                if piece.end:
                    self.rest = None
                else:
                    self.cache.append(piece.token)
                yield piece
            self.rest = None  # ended, or cut off by max_tokens: the rest of the turn is dropped

    return ZeroCost()


def framework_overhead(steps: int, rounds: int) -> tuple[float, Usage]:
    """Milliseconds per step of an episode on a scripted zero-cost model with a no-op tool.

    Also returns the last episode's usage: what really ran (`steps` calls, then the answer).
    """
    from agent.api import Agent

    calls = [f'<tool_call>\n{{"name": "noop", "arguments": {{"n": {k}}}}}\n</tool_call>' for k in range(steps)]
    per_step = []
    usage = Usage()
    for _ in range(rounds):
        model = zero_cost_model([*calls, "done"])
        agent = Agent(model, [noop_tool()], examples=(), max_steps=steps + 1, tool_choice="auto")
        began = time.perf_counter()
        usage = agent.run("Call noop until told otherwise.").usage
        elapsed = time.perf_counter() - began
        per_step.append(elapsed / usage.steps * 1000)
    return statistics.median(per_step), usage


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
    tools: Sequence[str] = ("calculator", "python"),
) -> Report:
    """Measure every figure of `TARGETS`; `quick` repeats less (for tests), it measures all.

    `tools` are the built-in tools whose call grammar the grammar cost is measured with: the
    command passes the default set its users get (fewer tools, a smaller grammar when offline).

    Everything runs off the main thread, on one thread: llama.cpp's OpenMP build keeps a team of
    threads for each thread that has generated, and idle teams slow the next (measured: raw
    generation 75 then 55, 48, 48 tokens/s in four new threads, 62-65 throughout on one).
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_run, model_path, quick, threads, n_gpu_layers, log, list(tools)).result()


def _run(
    model_path: str | None,
    quick: bool,
    threads: int | None,
    n_gpu_layers: int,
    log: Callable[[str], None],
    tools: list[str],
) -> Report:
    from agent.models.llama_cpp import LlamaCppModel

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

    # No prompt cache but where `warm_start` measures one: the other figures start as they always did.
    model = LlamaCppModel(model_path, threads=threads, n_gpu_layers=n_gpu_layers, seed=0, prompt_cache=None)
    details["model"] = model.name
    details["model_bytes"] = model.size_bytes

    def do_episodes() -> None:
        found = episodes(model, quick)
        details["episodes"] = found
        figures["prefill_reuse_ratio"] = round(found["evaluated"] / found["new"], 3)
        figures["prefill_naive_ratio"] = round(found["naive_evaluated"] / found["new"], 3)
        figures["ttft_flatness"] = round(found["ttft_flatness"], 3)

    def do_episodes_qwen3() -> None:
        found = episodes(model, True, chat_format="qwen3")
        details["episodes_qwen3"] = found
        figures["prefill_reuse_ratio_qwen3"] = round(found["evaluated"] / found["new"], 3)

    def do_binding() -> None:
        ratio, agent_rates, raw_rates = binding_efficiency(model, 48 if quick else 160, rounds)
        figures["binding_efficiency"] = round(ratio, 3)
        details["generation_tokens_per_s"] = {"agent": agent_rates, "raw": raw_rates}

    def do_grammar() -> None:
        details["grammar_tools"] = tools
        figures["grammar_cost_ratio"] = round(grammar_cost(model, 24 if quick else 48, rounds, tools), 3)

    def do_warm() -> None:
        ratio, seconds = warm_start(model, rounds)
        figures["warm_start_ratio"] = round(ratio, 3)
        details["warm_start"] = seconds

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

    def do_parallel() -> None:
        # A model of its own: 8 sequences of 2,048 tokens each, each in a KV stream of its own.
        batched = LlamaCppModel(
            model_path, threads=threads, n_gpu_layers=n_gpu_layers, seed=0, prompt_cache=None,
            context_size=2048, sequences=8,
        )  # fmt: skip
        passes = [parallel_throughput(batched, (1, 2, 4, 8), 6.0 if quick else 12.0) for _ in range(rounds)]
        figures["parallel_throughput_ratio"] = round(statistics.median(r[4] / r[1] for r in passes), 3)
        curve = {n: statistics.median(r[n] for r in passes) for n in (1, 2, 4, 8)}
        details["parallel_tokens_per_s"] = {str(n): round(rate, 1) for n, rate in curve.items()}

    def do_overhead() -> None:
        # An episode here takes about 25 ms, and this machine's speed swings within seconds: the
        # median of many is cheap, and one of them (all `--quick` had) was mostly noise.
        per_step, usage = framework_overhead(24, 15)
        figures["framework_overhead_ms_per_step"] = round(per_step, 3)
        details["framework_overhead_steps"] = usage.steps

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
    measure("prefill_reuse_ratio_qwen3", do_episodes_qwen3)
    measure("binding_efficiency", do_binding)
    measure("grammar_cost_ratio", do_grammar)
    measure("warm_start_ratio", do_warm)
    measure("prompt_lookup_speedup", do_lookup)
    measure("parallel_throughput_ratio", do_parallel)
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


def markdown(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table (key, measured, target, verdict), for a README."""
    lines = ["| key | measured | target | |", "|---|---:|---:|---|"]
    for key, (op, target, _) in TARGETS.items():
        value = figures.get(key)
        shown = "–" if value is None else f"{value:g}"
        aim = "report" if target is None else f"{op} {target:g}"
        lines.append(f"| `{key}` | {shown} | {aim} | {verdict(key, value)} |")
    return "\n".join(lines)
