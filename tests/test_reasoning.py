"""Reasoning controls: thinking budgets, "Wait", tool hints, calls in the thought, verification, votes."""

from __future__ import annotations

import pytest
from helpers import QWQ_TEMPLATE, add, call

from agent import Agent
from agent.core.policy import default_hint
from agent.core.records import ReasoningText
from agent.core.settings import Controls
from agent.models.scripted import ScriptedModel
from tools import tool


def thinker(turns: list[str], **options: object) -> Agent:
    """An agent on a scripted reasoning model. After we write into its turn, it moves to its next one."""
    return Agent(ScriptedModel(turns, thinking=True), [add], examples=(), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", [1, 17, 50])
def test_thinking_budget_closes_the_thought_exactly_at_n(budget: int) -> None:
    agent = thinker(["hmm " * 100, "42"], thinking_budget=budget)
    result = agent.run("?")
    assert result.stats["thinking_tokens"] == budget
    assert result.answer == "42" and result.stop_reason == "answer"
    text = agent.last_state["text"]
    assert "I have to answer now.\n</think>\n\n42<|im_end|>" in text
    assert text.index("<think>\n") + len("<think>\n") + budget == text.index("\n\nI have to answer now.")


def test_episode_budget_spans_steps_and_closes_later_thoughts_at_once() -> None:
    agent = thinker(["thinking " * 3 + "\n</think>\n\n" + call("add", a=1, b=2), "more " * 50, "3"], thinking_budget=40)
    result = agent.run("?")
    first, second = result.stats["per_step"]
    assert first["thinking"] == 28 and second["thinking"] == 12  # 40 in all, never more
    assert result.stats["thinking_tokens"] == 40 and result.answer == "3"


def test_step_budget_applies_to_each_step() -> None:
    # After each forced close the scripted model moves on to its next turn: the text after the thought.
    agent = thinker(["a " * 30, call("add", a=1, b=1), "b " * 30, "2"], step_thinking_budget=10)
    result = agent.run("?")
    assert [s["thinking"] for s in result.stats["per_step"]] == [10, 10]
    assert [c.output for c in result.tool_calls] == ["2"] and result.answer == "2"


def test_min_thinking_replaces_an_early_close_with_wait() -> None:
    agent = thinker(["Easy.\n</think>\n\nA", "Let me double-check that.\n</think>\n\nB"], min_thinking=20)
    result = agent.run("?")
    assert result.answer == "B"
    assert "Easy.\nWait" in result.reasoning and "double-check" in result.reasoning
    text = agent.last_state["text"]
    assert "</think>\n\nA" not in text and text.count("</think>") == 1
    assert result.stats["thinking_tokens"] >= 20


def test_min_thinking_also_applies_when_the_turn_ends_inside_the_thought() -> None:
    agent = thinker(
        ["Short", "er than that, surely.\n</think>\n\nC"], min_thinking=10, controls=Controls(wait_text="Hmm")
    )
    result = agent.run("?")
    assert "Short\nHmm" in result.reasoning and result.answer == "C"


def test_hint_on_heavy_arithmetic() -> None:
    agent = thinker(
        ["So 123 * 456 by hand is", "I'll use a tool.\n</think>\n\n" + call("add", a=1, b=2), "3"], hint=True
    )
    events = list(agent.stream("?"))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningText))
    assert "123 * 45\n\nWait, maybe using a tool here is a good idea.\n" in reasoning
    assert [c.name for c in events[-1].result.tool_calls] == ["add"]  # type: ignore[union-attr]


def test_hint_after_n_tokens_and_custom_text() -> None:
    agent = thinker(
        ["x" * 100, "ok\n</think>\n\n5"],
        hint="Try the adder.",
        hint_after=30,
        controls=Controls(hint_on_arithmetic=False),
    )
    result = agent.run("?")
    assert result.reasoning.startswith("x" * 30 + "\n\nTry the adder.\n")


def test_no_hint_by_default() -> None:
    agent = thinker(["So 123 * 456 is big\n</think>\n\n56088"])
    assert "Wait" not in agent.run("?").reasoning


def test_default_hint_names_the_best_tool() -> None:
    from tools import default_tools

    assert default_hint(default_tools(["calculator", "python"])) == "Wait, maybe using Python here is a good idea."
    assert default_hint(default_tools(["calculator"])) == "Wait, maybe using a tool here is a good idea."
    assert default_hint([]) == "Wait, maybe using a tool here is a good idea."


THOUGHT_WITH_CALL = "I should add.\n" + call("add", a=2, b=2)


def test_calls_in_reasoning_executed() -> None:
    agent = thinker([THOUGHT_WITH_CALL, "Four.\n</think>\n\n4"], calls_in_reasoning="execute")
    result = agent.run("2+2?")
    assert [(c.name, c.output) for c in result.tool_calls] == [("add", "4")]
    assert result.answer == "4"


def test_calls_in_reasoning_ignored() -> None:
    agent = thinker([THOUGHT_WITH_CALL + "\nNo, I can do it: 4.\n</think>\n\n4"], calls_in_reasoning="ignore")
    result = agent.run("2+2?")
    assert result.tool_calls == () and result.answer == "4"
    assert '"name": "add"' in result.reasoning


def test_default_policy_follows_the_template() -> None:
    qwq = QWQ_TEMPLATE
    qwq_like = ScriptedModel([THOUGHT_WITH_CALL + "\n</think>\n\n4"], thinking=True, chat_template=qwq)
    result = Agent(qwq_like, [add], examples=()).run("2+2?")
    assert result.tool_calls == ()  # QwQ's template renders calls after the thought: ignore inside it
    chatml = (  # plain ChatML (SmolLM2's): no </think>, so a call may come inside the thought
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>\n'}}{% endfor %}"
    )
    plain = ScriptedModel([THOUGHT_WITH_CALL, "4"], thinking=True, chat_template=chatml)
    assert len(Agent(plain, [add], examples=()).run("2+2?").tool_calls) == 1
    unknown = ScriptedModel([THOUGHT_WITH_CALL + "\n</think>\n\n4"], thinking=True)  # a server that says nothing
    assert Agent(unknown, [add], examples=()).run("2+2?").tool_calls == ()  # a reasoning model: as QwQ


def test_reasoning_can_be_forced_on_and_off() -> None:
    on = Agent(ScriptedModel(["thought\n</think>\n\n1"], thinking=False), [add], examples=(), reasoning=True)
    result = on.run("?")
    assert result.reasoning == "thought\n" and result.answer == "1"
    assert "<|im_start|>assistant\n<think>\n" in on.last_state["text"]
    off = Agent(ScriptedModel(["1"], thinking=True), [add], examples=(), reasoning=False, tool_choice="auto")
    assert off.run("?").reasoning == "" and "<think>" not in off.last_state["text"]


def test_verify_asks_for_a_check_and_records_it() -> None:
    agent = Agent(
        ScriptedModel(["The answer is 5.", call("add", a=2, b=3), "Checked: the answer is 5."]),
        [add],
        examples=(),
        tool_choice="auto",
        verify=True,
    )
    result = agent.run("2+3?")
    assert result.verification is not None
    assert result.verification.first_answer == "The answer is 5."
    assert result.verification.checked_with_tools and result.verification.confirmed
    assert "check your answer with the tools" in agent.last_state["text"]
    assert result.normalized == "5"


def test_verify_notices_a_changed_answer() -> None:
    agent = Agent(ScriptedModel(["6", "Actually it is 5."]), [add], examples=(), tool_choice="auto", verify=True)
    v = agent.run("2+3?").verification
    assert v is not None and not v.confirmed and not v.checked_with_tools


def test_samples_vote_for_the_majority() -> None:
    agent = Agent(
        ScriptedModel(["\\boxed{4}", "5", "The answer is 4.0"]),
        [add],
        examples=(),
        tool_choice="auto",
        samples=3,
    )
    result = agent.run("?")
    assert result.votes is not None
    assert result.votes.share == pytest.approx(2 / 3)
    assert result.answer == "\\boxed{4}" and len(result.votes.answers) == 3


def test_samples_must_be_positive() -> None:
    with pytest.raises(ValueError, match="samples"):
        Agent(ScriptedModel([]), [add], samples=0)


@pytest.mark.model
@pytest.mark.parametrize("budget", [16, 48])
def test_real_model_in_reasoning_mode_stays_within_its_budget(budget: int) -> None:
    agent = Agent(reasoning=True, thinking_budget=budget, seed=7, context_size=4096, tools=[])
    result = agent.run("A farmer has 17 sheep and buys 25 more. How many sheep does he have?")
    assert 0 < result.stats["thinking_tokens"] <= budget
    assert result.answer  # the thought was closed for it and it answered


@pytest.mark.model
def test_real_model_min_thinking_extends_with_wait() -> None:
    agent = Agent(
        reasoning=True, min_thinking=40, thinking_budget=120, seed=3, context_size=4096, tools=[], max_tokens=400
    )
    result = agent.run("What is 2 + 2?")
    assert result.stats["thinking_tokens"] >= 40 or "Wait" in result.reasoning


def test_a_repeated_call_is_not_run_again() -> None:
    runs: list[int] = []

    @tool
    def slow_add(a: int, b: int) -> int:
        """Add, expensively.

        Args:
            a: The first number.
            b: The second number.
        """
        runs.append(a + b)
        return a + b

    agent = Agent(ScriptedModel([call("slow_add", a=1, b=2)] * 2 + ["3"]), [slow_add], examples=(), tool_choice="auto")
    result = agent.run("?")
    first, again = result.tool_calls
    assert runs == [3] and first.output == "3"
    assert again.error and "You already called slow_add" in again.output and "returned: 3" in again.output
    assert result.answer == "3" and result.stop_reason == "answer"


def test_the_second_repetition_ends_the_episode_with_a_final_answer() -> None:
    agent = Agent(
        ScriptedModel([call("add", a=1, b=1)] * 3 + ["It is 2.", "never reached"]),
        [add],
        examples=(),
        tool_choice="auto",
    )
    result = agent.run("?")
    assert len(result.tool_calls) == 3 and [c.error for c in result.tool_calls] == [False, True, True]
    assert result.stop_reason == "repetition" and result.answer == "It is 2."
    assert "You have reached the limit for this task (repetition)" in agent.last_state["text"]


def test_different_arguments_are_not_a_repetition() -> None:
    agent = Agent(
        ScriptedModel([call("add", a=1, b=1), call("add", a=1, b=2), "done"]),
        [add],
        examples=(),
        tool_choice="auto",
    )
    assert [c.error for c in agent.run("?").tool_calls] == [False, False]
