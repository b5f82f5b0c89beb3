"""The agent loop, driven by a scripted model: routing, observations, budgets, streaming, reuse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import add, call, jinja_render, offline

from agent import Agent
from agent.core.records import AnswerText, Final, Observation, ReasoningText, StepFinished, ToolCallStarted
from agent.models.scripted import ScriptedModel
from tools import tool


@tool
def buggy(x: int) -> str:
    """A tool with a bug in it.

    Args:
        x: Anything.
    """
    raise ZeroDivisionError("oops")


def agent_for(turns: list[str], *, thinking: bool = False, tools: list | None = None, **options: object) -> Agent:
    model = ScriptedModel(turns, thinking=thinking)
    return Agent(model, [add, offline, buggy] if tools is None else tools, examples=(), **options)  # type: ignore[arg-type]


def test_tool_round_trip() -> None:
    agent = agent_for([call("add", a=2, b=3), "The sum is 5."])
    result = agent.run("What is 2 + 3?")
    assert result.answer == "The sum is 5."
    assert [(c.name, c.arguments, c.output, c.error) for c in result.tool_calls] == [
        ("add", {"a": 2, "b": 3}, "5", False)
    ]
    assert result.stats["steps"] == 2 and result.stats["tool_calls"] == 1
    assert "<tool_response>\n5\n</tool_response>" in agent.last_state["text"]


def test_the_call_body_is_generated_under_the_grammar() -> None:
    agent = agent_for([call("add", a=1, b=1), "2"], tool_choice="auto")
    agent.run("1+1?")
    grammars = agent.model.grammars  # type: ignore[attr-defined]
    assert grammars[0] is None  # free text until <tool_call> opens ...
    assert grammars[1] is not None and '"\\"add\\""' in grammars[1]  # ... then the call grammar
    assert grammars[2] is None


def test_required_tool_choice_constrains_from_the_first_token() -> None:
    agent = agent_for([call("add", a=1, b=1), "2"], tool_choice="required")
    agent.run("1+1?")
    first = agent.model.grammars[0]  # type: ignore[attr-defined]
    assert first is not None and first.startswith('root ::= "\\n"? "\\n"? "<tool_call>"')


def test_tool_choice_none_lists_no_tools_and_runs_no_calls() -> None:
    agent = agent_for([call("add", a=1, b=1), "2"], tool_choice="none")
    result = agent.run("1+1?")
    assert "<tools>" not in agent.last_state["text"]
    # The call written as text is our protocol, not an answer: the model is asked for one.
    assert result.tool_calls == () and result.answer == "2"


def test_unknown_tool_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="'nonexistent' is none of the tools; choose one of: auto, required, none"):
        agent_for([], tool_choice="nonexistent")


def test_malformed_call_becomes_an_observation_and_the_model_recovers() -> None:
    agent = agent_for(['<tool_call>\n{"name": "add", "arguments": {"a": 1,}\n</tool_call>', call("add", a=1, b=2), "3"])
    result = agent.run("1+2?")
    bad, good = result.tool_calls
    assert bad.error and "not valid JSON" in bad.output
    assert good.output == "3" and result.answer == "3"


def test_unknown_tool_and_bad_arguments_are_observations() -> None:
    agent = agent_for([call("multiply", a=2, b=3), call("add", a="two", b=3), "I could not."])
    result = agent.run("2*3?")
    unknown, bad_args = result.tool_calls
    assert unknown.error and "no tool named 'multiply'" in unknown.output and "add" in unknown.output
    assert bad_args.error and "bad arguments for add" in bad_args.output and "a:" in bad_args.output


def test_tool_error_is_an_observation() -> None:
    agent = agent_for([call("offline", query="weather"), "I cannot search right now."])
    result = agent.run("Weather?")
    (c,) = result.tool_calls
    assert c.error and c.output == "error: search unavailable: network unreachable"
    assert result.answer == "I cannot search right now."


def test_a_bug_in_a_tool_raises() -> None:
    agent = agent_for([call("buggy", x=1)])
    with pytest.raises(ZeroDivisionError):
        agent.run("go")


def test_step_budget_asks_for_the_final_answer() -> None:
    agent = agent_for([call("add", a=1, b=k) for k in range(3)] + ["Final: 2"], max_steps=3)
    result = agent.run("loop forever")
    assert result.answer == "Final: 2" and result.stop_reason == "steps"
    assert len(result.tool_calls) == 3
    assert "You have reached the limit for this task (steps)" in agent.last_state["text"]


def test_many_steps_never_hit_langgraph_recursion_limit() -> None:
    agent = agent_for([call("add", a=i, b=1) for i in range(40)] + ["done"], max_steps=40)
    assert agent.run("loop").stop_reason == "steps"


def test_token_budget_cuts_a_runaway_thought_and_asks_for_the_answer() -> None:
    agent = agent_for(["hmm " * 200, "42"], thinking=True, max_tokens=50)
    result = agent.run("?")
    assert result.stats["thinking_tokens"] == 50 and result.stats["generated_tokens"] == 52
    assert result.answer == "42" and result.stop_reason == "tokens"
    # the forced final turn starts with the thought already closed
    assert agent.last_state["text"].endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\nFrom the results above, the final answer is42<|im_end|>\n"
    )


def test_no_answer_at_all_gives_none() -> None:
    agent = agent_for(["", ""])
    result = agent.run("?")
    assert result.answer is None and result.stop_reason == "no_answer"


def test_events_stream_in_order() -> None:
    agent = agent_for(
        ["Checking.\n</think>\n\n" + call("add", a=2, b=2), "So it is four.\n</think>\n\n4"], thinking=True
    )
    events = list(agent.stream("2+2?"))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ReasoningText" and kinds[-1] == "Final"
    order = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    assert order == [
        "ReasoningText",
        "StepFinished",
        "ToolCallStarted",
        "Observation",
        "ReasoningText",
        "AnswerText",
        "StepFinished",
        "Final",
    ]
    assert "".join(e.text for e in events if isinstance(e, ReasoningText)) == "Checking.\nSo it is four.\n"
    assert "".join(e.text for e in events if isinstance(e, AnswerText)) == "4"
    (started,) = [e for e in events if isinstance(e, ToolCallStarted)]
    (seen,) = [e for e in events if isinstance(e, Observation)]
    assert started.arguments == {"a": 2, "b": 2} and seen.call.output == "4"
    assert isinstance(events[-1], Final) and events[-1].result.answer == "4"


def test_each_step_evaluates_only_new_tokens() -> None:
    agent = agent_for([call("add", a=1, b=2), call("add", a=3, b=3), "6"])
    result = agent.run("?")
    steps = result.usage.per_step
    assert len(steps) == 3 and steps[0].prompt_reused == 0
    for step in steps[1:]:
        assert step.prompt_reused > 0
        assert step.prompt_evaluated == step.prompt_new
    assert result.usage.prompt_evaluated == result.usage.prompt_tokens == sum(s.prompt_new for s in steps)


def test_chat_turns_extend_one_transcript() -> None:
    agent = agent_for([call("add", a=1, b=2), "3", "Yes, 3.", "4"])
    chat = agent.chat()
    assert chat.send("1+2?").answer == "3"
    first_text = agent.last_state["text"]
    second = chat.send("Sure?")
    assert second.answer == "Yes, 3."
    assert agent.last_state["text"].startswith(first_text)
    (step,) = second.stats["per_step"]
    assert step["prompt_evaluated"] == step["prompt_new"] < step["prompt_reused"]
    chat.reset()
    assert chat.send("2+2?").answer == "4"
    assert "1+2?" not in agent.last_state["text"]  # a new conversation


def test_episode_transcript_matches_the_template_once_reasoning_is_dropped() -> None:
    """What the model saw is the template's rendering plus its own kept reasoning, nothing else."""
    from agent.core.records import Call
    from agent.core.transcript import Message

    agent = agent_for(
        ["I need the sum.\n</think>\n\n" + call("add", a=37, b=12), "It is 49.\n</think>\n\nThe answer is 49."],
        thinking=True,
        system_prompt="Be exact.",
    )
    agent.run("What is 37 + 12?")
    messages = [
        Message("system", "Be exact."),
        Message("user", "What is 37 + 12?"),
        Message("assistant", "", (Call("add", {"a": 37, "b": 12}),)),
        Message("tool", "49"),
        Message("assistant", "The answer is 49."),
    ]
    without_reasoning = re.sub(r"<think>\n.*?</think>\n\n", "", agent.last_state["text"], flags=re.DOTALL)
    assert without_reasoning == jinja_render(messages, agent.tools.schemas(), generation=False)


def test_graph_drawing_snapshot() -> None:
    agent = agent_for([])
    snapshot = Path(__file__).parent / "fixtures" / "graph.mmd"
    assert agent.graph.get_graph().draw_mermaid() == snapshot.read_text()


def test_step_finished_reports_costs() -> None:
    agent = agent_for([call("add", a=1, b=2), "3"])
    steps = [e for e in agent.stream("?") if isinstance(e, StepFinished)]
    assert [s.step for s in steps] == [1, 2]
    assert steps[1].prompt_reused > 0 and steps[0].generated == len(call("add", a=1, b=2))


def test_without_a_checkpointer_calls_run_in_the_step_that_wrote_them() -> None:
    from agent.core.graph import build_graph

    turns = [call("add", a=1, b=2) + call("add", a=3, b=4), call("add", a=5, b=6), "Done: 3, 7, 11."]
    plain = agent_for(list(turns))
    assert plain.checkpointer is None
    durable = build_graph(ScriptedModel(list(turns)), plain.tools, plain.settings, durable=True)
    nodes = {}
    for name, graph in (("plain", plain.graph), ("durable", durable)):
        chunks = list(graph.stream({"question": "Add them."}, stream_mode="updates"))
        nodes[name] = [node for chunk in chunks for node in chunk]
        last = {k: v for chunk in chunks for update in chunk.values() for k, v in (update or {}).items()}
        assert [c.output for c in last["tool_calls"]] == ["3", "7", "11"] and last["answer"] == "Done: 3, 7, 11."
    # A superstep per call only where a checkpointer could keep the finished one.
    assert nodes["plain"] == ["start", "reason", "reason", "reason"]
    assert nodes["durable"] == ["start", "reason", "act", "act", "reason", "act", "reason"]
