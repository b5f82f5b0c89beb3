"""A model of one sequence allocates its KV cache as its transcript grows (`FIRST_CELLS`, doubled).

Judged by effect: the same greedy tokens as a cache allocated whole, and a process's memory that
follows the cells used, not the context asked for.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import agent.models.llama_cpp as llama_cpp_module
from agent.models.llama_cpp import LlamaCppModel
from agent.models.protocol import Sampling

pytestmark = pytest.mark.model

GREEDY = Sampling(temperature=0.0)


def greedy(model: LlamaCppModel, prompt: list[int], count: int) -> list[int]:
    return [p.token for p in model.generate(prompt, max_tokens=count)]


def test_a_growing_cache_generates_what_a_whole_one_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_cpp_module, "FIRST_CELLS", 1024)
    whole = LlamaCppModel(context_size=1024, sampling=GREEDY, prompt_cache=None)
    monkeypatch.setattr(llama_cpp_module, "FIRST_CELLS", 256)
    growing = LlamaCppModel(context_size=1024, sampling=GREEDY, prompt_cache=None)
    assert growing.describe()["kv_cells"] == 256 and growing.context_size == 1024
    notes = "The moon goes round the earth, and the earth goes round the sun. " * 30
    text = (
        f"<|im_start|>system\n{notes}<|im_end|>\n<|im_start|>user\nCount from 1 to 300, one number per line."
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    prompt = growing.tokenize(text, True)
    assert 256 < len(prompt) < 512  # the prompt itself outgrows the first cells
    expected = greedy(whole, prompt, 1024)
    assert len(prompt) + len(expected) > 512  # and generation outgrows the second
    assert greedy(growing, prompt, 1024) == expected
    assert growing.describe()["kv_cells"] == 1024
    # The grown cache still serves the cached prefix: the same prompt evaluates one token.
    again = growing.generate(prompt, max_tokens=1)
    list(again)
    assert again.evaluated == 1


RSS = """
import re, sys
from agent.models.llama_cpp import LlamaCppModel
model = LlamaCppModel(context_size=int(sys.argv[1]), prompt_cache=None)
list(model.generate(model.tokenize("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n", True), max_tokens=8))
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""


def peak_mb(context_size: int) -> float:
    done = subprocess.run([sys.executable, "-c", RSS, str(context_size)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def test_memory_follows_the_cells_used_not_the_context_asked_for() -> None:
    # In f16 the embedded model's cache takes 23 KB a cell: 8192 cells are 135 MiB more than 2048.
    assert peak_mb(8192) - peak_mb(2048) < 40
