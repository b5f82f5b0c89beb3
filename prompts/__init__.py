"""Prompts as data: the files beside this module, loaded and rendered strictly.

`text(name, **values)` fills `$placeholders` with `string.Template.substitute`, so a missing
value is an error rather than a silent hole. `messages(name)` reads a JSON list of chat messages
(few-shot examples). This module holds no prompt text of its own.
"""

from __future__ import annotations

import json
from importlib.resources import files
from string import Template
from typing import Any


def text(name: str, **values: Any) -> str:
    """The prompt file `name` (e.g. "system.md") with `$placeholders` filled from `values`."""
    return Template(files(__name__).joinpath(name).read_text(encoding="utf-8")).substitute(values).strip()


def messages(name: str) -> list[dict[str, Any]]:
    """The JSON list of chat messages in the prompt file `name`."""
    loaded = json.loads(files(__name__).joinpath(name).read_text(encoding="utf-8"))
    if not isinstance(loaded, list) or not all(isinstance(m, dict) and "role" in m for m in loaded):
        raise ValueError(f"prompt file {name} must be a JSON list of messages with a role")
    return loaded
