"""Chat formats, one small module per model family, behind one interface (`ChatFormat`).

`for_template(template, name)` picks the format of a model: the family its GGUF's
`tokenizer.chat_template` belongs to (`agent.models.families.family`), or the one named by
`--chat-format NAME`. A template of no known family is rendered by itself, message by message
(`agent.core.formats.jinja`), with Hermes calls, and a warning once.

| module | families |
|---|---|
| chatml | QwQ-32B, Qwen2.5 (and plain ChatML), Qwen3 (and 2507 Thinking), Hermes 3, SmolLM3 |
| qwen_xml | Qwen3.5 / 3.6, Qwen3-Coder |
| deepseek | DeepSeek-R1 distills |
| harmony | gpt-oss |
| llama3 | Llama 3.1 / 3.2 |
| mistral | Ministral 3 |
| gemma | Gemma 2 / 3 |
| jinja | anything else |
"""

from __future__ import annotations

from collections.abc import Callable

from agent.core.formats.base import ChatFormat
from agent.core.formats.chatml import Hermes3, Qwen3, Qwen3Thinking, Qwen25, QwQ, SmolLM3
from agent.core.formats.deepseek import DeepSeekR1
from agent.core.formats.gemma import Gemma
from agent.core.formats.harmony import Harmony
from agent.core.formats.jinja import Jinja
from agent.core.formats.llama3 import Llama3
from agent.core.formats.mistral import Mistral3
from agent.core.formats.qwen_xml import Qwen3Coder, Qwen35
from agent.models.families import FAMILIES, family

FORMATS: dict[str, Callable[[str], ChatFormat]] = {
    "qwq": lambda template: QwQ(),
    "qwen2.5": lambda template: Qwen25(),
    "qwen3": lambda template: Qwen3(),
    "qwen3-thinking": lambda template: Qwen3Thinking(),
    "hermes3": lambda template: Hermes3(),
    "smollm3": lambda template: SmolLM3(),
    "qwen3.5": lambda template: Qwen35(),
    "qwen3-coder": lambda template: Qwen3Coder(),
    "deepseek-r1": lambda template: DeepSeekR1(),
    "gpt-oss": lambda template: Harmony(),
    "llama3": Llama3,
    "mistral3": lambda template: Mistral3(),
    "gemma": lambda template: Gemma(),
    "jinja": Jinja,
}
"""Each family's format, built from the model's template (the Jinja fallback renders with it)."""


def for_template(
    template: str, name: str | None = None, *, bos_token: str = "", reasoning_effort: str | None = None
) -> ChatFormat:
    """The chat format for a model with this template; `name` (`--chat-format`) overrides detection.

    `bos_token` is the text of the model's begin-of-sequence token, for the Jinja fallback;
    `reasoning_effort` is gpt-oss's `Reasoning:` level.
    """
    if name is not None and name not in FORMATS:
        known = ", ".join(n for n in FAMILIES if n in FORMATS)
        raise ValueError(f"unknown chat format {name!r}; the formats are: {known}")
    chosen = name or family(template)
    if chosen == "jinja":
        return Jinja(template, bos_token)
    fmt = FORMATS[chosen](template)
    if reasoning_effort is not None and isinstance(fmt, Harmony):
        fmt.reasoning_effort = reasoning_effort
    return fmt


__all__ = ["FORMATS", "ChatFormat", "for_template"]
