"""ChatML's structure tags, and `neutralize`, which defuses them in text that is data.

These are the special tokens of the ChatML family (QwQ, Qwen, SmolLM2): a tokenizer parses them
as structure when asked to, and a server parses them in any prompt text. So a model that sends
text (`agent.models.openai`) and the transcript (`agent.core.transcript`) both defuse data with
`neutralize` before it is tokenized. This module renders nothing.
"""

from __future__ import annotations

import re

__all__ = ["CALL_CLOSE", "CALL_OPEN", "IM_END", "IM_START", "THINK_CLOSE", "THINK_OPEN", "neutralize"]

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"

# Tags that would let tool output close its turn, open a new one, or fake a call or a thought.
_FORGERY = re.compile(r"<\|[^|<>\s]{1,40}\|>|<\s*/?\s*(?:tool_call|tool_response|tools|think)\s*>", re.IGNORECASE)


def neutralize(text: str) -> str:
    """Defuse transcript structure in untrusted text, keeping it readable.

    The tag's `<` becomes `&lt;`: the model still sees what the text said, but neither the
    tokenizer (llama.cpp matches added tokens such as `<tool_call>` even in plain text) nor the
    parser can take it for structure.
    """
    return _FORGERY.sub(lambda m: "&lt;" + m.group(0)[1:], text)
