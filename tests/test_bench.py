"""Tests of `qwq-agent bench`: quick mode end to end (every key present and sane), and its parts.

No figure is held to its target here: targets are for the benchmark on a quiet machine, and a
timed assertion in a test only measures the test machine's load. The checks are that every
figure was measured and lies in a range no working build leaves.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from agent.models.protocol import common_prefix
from agent.workloads import bench, model_bench
from agent.workloads.bench import TARGETS, verdict
from agent.workloads.model_bench import drop_reasoning, single_call_grammar


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "bench", "--quick", "--json"], capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.mark.model
def test_quick_bench_reports_every_key(quick: dict[str, Any]) -> None:
    missing = [k for k in TARGETS if k not in quick]
    assert not missing
    not_measured = {k: quick["notes"].get(k) for k in TARGETS if quick[k] is None}
    if "sandbox_warm_p50_ms" in not_measured and not bench.sandbox_available():
        not_measured.pop("sandbox_warm_p50_ms")  # no bubblewrap here; the note says so
        not_measured.pop("sandbox_cold_p50_ms", None)
    assert not not_measured, not_measured
    for key in TARGETS:
        value = quick[key]
        assert value is None or (isinstance(value, int | float) and math.isfinite(value)), (key, value)


@pytest.mark.model
def test_quick_bench_figures_are_sane(quick: dict[str, Any]) -> None:
    # Counts, not timings: exact enough to hold on any machine.
    # Session B reuses the system prompt session A left in the cache, so the ratio may dip below 1;
    # re-reading history would put it far above.
    assert 0.5 <= quick["prefill_reuse_ratio"] < 1.5
    assert quick["prefill_naive_ratio"] >= 0.95 * quick["prefill_reuse_ratio"]
    episodes = quick["details"]["episodes"]
    assert episodes["tool_steps"] == [model_bench.STEPS] * episodes["turns"]  # every driven step called the tool
    assert episodes["turns"] == 3
    # The grammar is the default tool set's (QWQ_NETWORK=on here: all four tools).
    assert quick["details"]["grammar_tools"] == ["calculator", "python", "web_search", "read_page"]
    # Timings: only their kind is checked.
    assert sorted(quick["details"]["parallel_tokens_per_s"], key=int) == ["1", "2", "4", "8"]
    assert all(rate > 0 for rate in quick["details"]["parallel_tokens_per_s"].values())
    for key in (
        "binding_efficiency",
        "grammar_cost_ratio",
        "ttft_flatness",
        "prompt_lookup_speedup",
        "parallel_throughput_ratio",
    ):
        assert 0.01 < quick[key] < 100, key
    for key in ("framework_overhead_ms_per_step", "cli_startup_ms", "calculator_p50_ms"):
        assert 0 < quick[key] < 60_000, key
    assert 0 < quick["rss_overhead_mb"] < 24_000
    # Greedy decoding with drafting should not change the text; where llama.cpp's batched
    # evaluation makes it differ, the figure must say so rather than pass as a speed-up.
    identical = quick["details"]["prompt_lookup_identical"]
    assert identical is True or "NOT identical" in quick["notes"]["prompt_lookup_speedup"]


def test_finished_turns_lose_their_thought_as_templates_do() -> None:
    text = (
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\nA<|im_end|>\n"
        "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    assert drop_reasoning(text) == (
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
        "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    plain = "<|im_start|>assistant\nno thought<|im_end|>\n"
    assert drop_reasoning(plain) == plain


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_driven_grammar_writes_one_call_with_a_fresh_key() -> None:
    forced = single_call_grammar(opened=False)
    assert (
        forced
        == 'root ::= "<tool_call>\\n{\\"name\\": \\"lookup\\", \\"arguments\\": {\\"key\\": KEY}}\\n</tool_call>"'
    )
    assert single_call_grammar(opened=True) == forced.replace("<tool_call>", "", 1)


def test_verdicts() -> None:
    assert verdict("prefill_reuse_ratio", 1.0) == "ok"
    assert verdict("prefill_reuse_ratio", 1.2) == "MISS"
    assert verdict("binding_efficiency", 0.96) == "ok"
    assert verdict("binding_efficiency", 0.9) == "MISS"
    assert verdict("prefill_naive_ratio", 3.0) == "report"
    assert verdict("cli_startup_ms", None) == "n/a"


def test_markdown_table_lists_every_key() -> None:
    table = bench.markdown({"prefill_reuse_ratio": 1.02, "rss_overhead_mb": 300.0})
    assert len(table.splitlines()) == 2 + len(TARGETS)
    assert "| `prefill_reuse_ratio` | 1.02 | <= 1.1 | ok |" in table
    assert "| `rss_overhead_mb` | 300 | <= 200 | MISS |" in table
    assert "| `cli_startup_ms` | – | <= 250 | n/a |" in table


def test_framework_overhead_measures_real_tool_steps() -> None:
    per_step, usage = bench.framework_overhead(steps=4, rounds=1)
    assert (usage.steps, usage.tool_calls) == (5, 4)  # four calls that ran (none cut as a repetition), the answer
    assert per_step > 0 and math.isfinite(per_step)
