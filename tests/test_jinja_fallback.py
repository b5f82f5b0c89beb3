"""A template of no known family is rendered by itself, message by message, with Hermes calls.

Gemma 4's and Ministral 3's real templates stand in for "anything else". The text a message adds
is the difference of two renders of the template, message text stays data, a warning says once
that the calls are read as Hermes. `--chat-format NAME` overrides what the template says.
"""

from __future__ import annotations

import logging

import pytest
from helpers import QWQ_TEMPLATE, add
from test_formats import CASES, jinja, template

from agent import Agent
from agent.core.formats import for_template
from agent.core.formats.jinja import as_dicts
from agent.core.records import Call
from agent.core.transcript import Message
from agent.scripted import ScriptedModel

GEMMA = "google-gemma-4-31B-it"
FALLBACK = [n for n, (f, _) in CASES.items() if f == "jinja"]
STUB = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": "q"},
    {"role": "assistant", "content": "a"},
]


def text(segments: list) -> str:
    return "".join(s.text for s in segments)


def test_an_unknown_template_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    fresh = template(GEMMA) + "{# a template this process has not seen #}"
    with caplog.at_level(logging.WARNING):
        for_template(fresh)
        for_template(fresh)
    warnings = [r for r in caplog.records if "no known family" in r.getMessage()]
    assert len(warnings) == 1 and "Hermes" in warnings[0].getMessage()


@pytest.mark.parametrize("name", FALLBACK)
def test_a_follow_up_adds_the_difference_of_two_renders(name: str) -> None:
    fmt = for_template(template(name), bos_token=CASES[name][1])
    follow = Message("user", "And <start_of_turn>42 + 1?")
    added = fmt.render([follow])
    before = jinja(name, STUB, [], False)
    after = jinja(name, [*STUB, {"role": "user", "content": follow.content}], [], False)
    assert after.startswith(before) and text(added) == after[len(before) :]
    assert [s.text for s in added if not s.structure] == [follow.content]  # the question is data, never structure


@pytest.mark.parametrize("name", FALLBACK)
def test_an_observation_adds_what_a_tool_message_adds(name: str) -> None:
    fmt = for_template(template(name), bos_token=CASES[name][1])
    calling = as_dicts([Message("assistant", "", (Call("add", {}),))])
    stub = [*STUB[:2], *calling]
    before = jinja(name, stub, [], False)
    after = jinja(name, [*stub, {"role": "tool", "content": "42"}], [], False)
    added = fmt.observation("42", name="add")
    assert after.startswith(before) and text(added) == after[len(before) :]
    assert [s.text for s in added if not s.structure] == ["42"]


def test_the_generation_prompt_is_the_templates() -> None:
    fmt = for_template(template(GEMMA), bos_token="<bos>")
    stub = STUB[:2]
    opening, _ = fmt.prompt("", thinking=False)
    assert opening == jinja(GEMMA, stub, [], True, enable_thinking=False)[len(jinja(GEMMA, stub, [], False)) :]


def test_chat_format_overrides_the_template() -> None:
    m = ScriptedModel(["The answer is 42."], chat_template=QWQ_TEMPLATE)
    Agent(m, [add], examples=(), chat_format="llama3", tool_choice="auto", max_steps=1).run("What is 37 + 5?")
    prompt = "".join(map(chr, m.prompts[0]))
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_an_unknown_chat_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown chat format 'chatml2'; the formats are: qwq, qwen2.5, "):
        Agent(ScriptedModel([]), [add], chat_format="chatml2")
