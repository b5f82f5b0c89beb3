"""Which model family a chat template belongs to, whether it reasons, and how to sample it.

`family(template)` names the family a GGUF's `tokenizer.chat_template` was written for, by the
structure tokens only that family's template uses; `thinks(family)` says whether its models
reason before they answer, and `family_sampling` gives the sampling its model cards recommend.
Models read these at load time (their `thinking` and `sampling` defaults); the chat formats that
render and parse each family live in `agent.core.formats`. Nothing here renders or parses.
"""

from __future__ import annotations

from agent.models.protocol import INSTRUCT_SAMPLING, Sampling

FAMILIES = (
    "qwq", "qwen2.5", "qwen3", "qwen3-thinking", "qwen3.5", "qwen3-coder", "deepseek-r1", "gpt-oss", "smollm3",
    "llama3", "hermes3", "mistral3", "gemma", "jinja",
)  # fmt: skip
"""Every family name `--chat-format` takes; `jinja` renders with the model's own template."""

# Thinking families and their model cards' sampling (temperature, top_p, top_k).
_THINKING = {"qwq", "qwen3", "qwen3-thinking", "qwen3.5", "deepseek-r1", "gpt-oss", "smollm3", "mistral3"}
_CARDS: dict[str, tuple[Sampling, Sampling]] = {
    # (thinking, not thinking)
    "qwq": (Sampling(0.6, 0.95, 40), INSTRUCT_SAMPLING),
    "qwen3": (Sampling(0.6, 0.95, 20), Sampling(0.7, 0.8, 20)),
    "qwen3-thinking": (Sampling(0.6, 0.95, 20), Sampling(0.7, 0.8, 20)),
    "qwen3.5": (Sampling(0.6, 0.95, 20), Sampling(0.7, 0.8, 20)),
    "qwen3-coder": (Sampling(0.7, 0.8, 20, repeat_penalty=1.05), Sampling(0.7, 0.8, 20, repeat_penalty=1.05)),
    "deepseek-r1": (Sampling(0.6, 0.95, 40), Sampling(0.6, 0.95, 40)),
    "gpt-oss": (Sampling(1.0, 1.0, 0), Sampling(1.0, 1.0, 0)),
    "smollm3": (Sampling(0.6, 0.95, 40), Sampling(0.6, 0.95, 40)),
    "mistral3": (Sampling(0.7, 0.95, 40), Sampling(0.15, 0.95, 40)),
    "gemma": (Sampling(1.0, 0.95, 64), Sampling(1.0, 0.95, 64)),
}


def family(template: str, architecture: str = "") -> str:
    """The family a chat template belongs to; "qwq" when it is unknown (""), "jinja" when foreign.

    `architecture` (a GGUF's `general.architecture`) names the family of a file without a template.
    """
    t = template
    if not t:
        # A server that does not say is taken to be QwQ, as before families existed.
        return "gemma" if architecture.startswith("gemma") else "qwq"
    if "<|channel|>" in t and "<|start|>" in t:
        return "gpt-oss"
    if "<｜Assistant｜>" in t or "<｜tool▁calls▁begin｜>" in t:
        return "deepseek-r1"
    if "<|start_header_id|>" in t and "ipython" in t:
        return "llama3"
    if "[TOOL_CALLS]" in t and "[ARGS]" in t and "[INST]" in t:
        return "mistral3"
    if "<start_of_turn>" in t and "<end_of_turn>" in t:
        return "gemma"
    if "<|im_start|>" not in t:
        return "jinja"
    if "<function=" in t and "<parameter=" in t:
        return "qwen3.5" if "<think>" in t else "qwen3-coder"
    if "Reasoning Mode" in t and "/no_think" in t:
        return "smollm3"
    if "You are a function calling AI model" in t:
        return "hermes3"
    if "<think>" in t and ("reasoning_content" in t or "enable_thinking" in t):
        # The 2507 Thinking models' template opens the thought itself and has no switch.
        opens = "'<|im_start|>assistant\\n<think>\\n'" in t and "enable_thinking" not in t
        return "qwen3-thinking" if opens else "qwen3"
    if "<think>" in t:
        return "qwq"
    if "<tool_call>" in t or "{%" in t:
        return "qwen2.5"  # Qwen2.5's Hermes calls; plain ChatML (SmolLM2) is rendered the same way
    return "jinja"


def thinks(name: str) -> bool:
    """Whether models of this family reason before they answer by default."""
    return name in _THINKING


def default_thinking(template: str) -> bool:
    """Whether a model with this chat template reasons by default (unknown, "": it does not say)."""
    return bool(template) and thinks(family(template))


def family_sampling(name: str, thinking: bool) -> Sampling:
    """The sampling the family's model cards recommend (QwQ's, or the cool instruct one, otherwise)."""
    cards = _CARDS.get(name)
    if cards is None:
        return Sampling() if thinking else INSTRUCT_SAMPLING
    return cards[0] if thinking else cards[1]
