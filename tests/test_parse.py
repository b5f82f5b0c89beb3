"""The streaming parser, fed whole and in every possible split."""

from __future__ import annotations

import random

import pytest

from agent.core.parse import BadCall, CallOpened, Parsed, ParsedCall, StreamParser, parse_call
from agent.core.records import AnswerText as Content
from agent.core.records import Call
from agent.core.records import ReasoningText as Reasoning

TURN = (
    "Let me think: 37 * 89 is big.\n</think>\n\nI'll compute.\n<tool_call>\n"
    '{"name": "calculator", "arguments": {"expression": "37 * 89 + 12"}}\n</tool_call>\n<tool_call>\n'
    '{"name": "web_search", "arguments": {"query": "<think> inside a string"}}\n</tool_call>'
)


def run(chunks: list[str], thinking: bool = True) -> tuple[list[Parsed], StreamParser]:
    parser = StreamParser(thinking)
    events = [e for chunk in chunks for e in parser.feed(chunk)] + parser.close()
    return events, parser


def summarize(events: list[Parsed]) -> tuple[str, str, list[Call | BadCall]]:
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    content = "".join(e.text for e in events if isinstance(e, Content))
    calls = [e.call if isinstance(e, ParsedCall) else e for e in events if isinstance(e, ParsedCall | BadCall)]
    return reasoning, content, calls


EXPECTED = (
    "Let me think: 37 * 89 is big.\n",
    "I'll compute.\n\n",  # the newline between the two calls is text too
    [
        Call("calculator", {"expression": "37 * 89 + 12"}),
        Call("web_search", {"query": "<think> inside a string"}),
    ],
)


def test_whole_turn() -> None:
    events, parser = run([TURN])
    assert summarize(events) == EXPECTED
    assert parser.thought_closed
    assert sum(isinstance(e, CallOpened) for e in events) == 2


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
def test_any_chunking_gives_the_same_split(size: int) -> None:
    chunks = [TURN[i : i + size] for i in range(0, len(TURN), size)]
    assert summarize(run(chunks)[0]) == EXPECTED


def test_random_splits() -> None:
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(TURN)), 12))
        chunks = [TURN[a:b] for a, b in zip([0, *cuts], [*cuts, len(TURN)], strict=True)]
        assert summarize(run(chunks)[0]) == EXPECTED


def test_call_opened_is_reported_as_soon_as_the_tag_completes() -> None:
    parser = StreamParser(thinking=False)
    assert parser.feed("ok <tool_") == [Content("ok ")]
    assert parser.feed("call>") == [CallOpened()]


def test_text_that_only_looked_like_a_tag_is_released() -> None:
    events, _ = run(["a </thi", "s is not a tag"], thinking=True)
    assert summarize(events)[0] == "a </this is not a tag"


def test_missing_think_close_keeps_everything_as_reasoning() -> None:
    events, parser = run(["I think and think and never stop"])
    assert summarize(events) == ("I think and think and never stop", "", [])
    assert not parser.thought_closed


def test_instruct_model_that_opens_a_thought_itself() -> None:
    events, _ = run(["<think>hmm</think>\n\nAnswer: 4"], thinking=False)
    assert summarize(events) == ("hmm", "Answer: 4", [])


def test_unclosed_call_is_a_bad_call() -> None:
    events, _ = run(['<tool_call>\n{"name": "calculator", "argu'], thinking=False)
    (bad,) = summarize(events)[2]
    assert isinstance(bad, BadCall) and "not closed" in bad.error


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json at all", "not valid JSON"),
        ('{"arguments": {}}', 'no "name"'),
        ('["calculator"]', 'no "name"'),
        ('{"name": "calculator", "arguments": [1, 2]}', "must be a JSON object"),
    ],
)
def test_malformed_calls_say_what_is_wrong(body: str, problem: str) -> None:
    result = parse_call(body)
    assert isinstance(result, BadCall)
    assert problem in result.error and "<tool_call>" in result.error


def test_double_encoded_arguments_are_accepted() -> None:
    result = parse_call('{"name": "f", "arguments": "{\\"x\\": 1}"}')
    assert result == ParsedCall(Call("f", {"x": 1}), '{"name": "f", "arguments": "{\\"x\\": 1}"}')


def test_garbage_never_raises() -> None:
    rng = random.Random(1)
    alphabet = ["<", ">", "/", "think", "tool_call", "{", "}", '"', "\n", "x", "<|im_end|>"]
    for _ in range(300):
        garbage = "".join(rng.choice(alphabet) for _ in range(40))
        events, _ = run([garbage[i : i + 3] for i in range(0, len(garbage), 3)], thinking=rng.random() < 0.5)
        for e in events:
            assert isinstance(e, Reasoning | Content | CallOpened | ParsedCall | BadCall)
