"""Each family's calls: written in its syntax they parse and run, malformed they become an
observation, and a whole conversation renders as the family's template renders it.

Every family is driven through a `ScriptedModel` carrying its real template, so the agent treats
it as it would a GGUF with that template. The multi-turn check compares the prompt of a second
question (the first episode is history by then) with the template's rendering of the same
conversation, minus the thoughts our append-only transcript keeps and the template drops.
"""

from __future__ import annotations

import re

import pytest
from helpers import add
from test_formats import CASES, SYSTEM, jinja, model, prompt_text, template

from agent import Agent
from agent.core.formats import for_template
from agent.core.parse import BadCall, ParsedCall
from agent.scripted import ScriptedModel

ARGS = '{"a": 37, "b": 5}'
HERMES = '<tool_call>\n{"name": "add", "arguments": ' + ARGS + "}\n</tool_call>"
XML = (
    "<tool_call>\n<function=add>\n<parameter=a>\n37\n</parameter>\n<parameter=b>\n5\n</parameter>\n</function>\n"
    "</tool_call>"
)
R1 = (
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>add\n```json\n" + ARGS + "\n```"
    "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
)
HARMONY_TO = "<|start|>assistant to=functions.add<|channel|>commentary json<|message|>"
HARMONY_CALL = "<|channel|>analysis<|message|>I add.<|end|>" + HARMONY_TO + ARGS
HARMONY_ANSWER = (
    "<|channel|>analysis<|message|>Done.<|end|><|start|>assistant<|channel|>final<|message|>The answer is 42."
)
ANSWER = "The answer is 42."
TURNS: dict[str, tuple[str, str]] = {
    # family: (a turn that calls add(37, 5), a turn that answers), as the model writes them
    "qwq": ("I add.\n</think>\n\n" + HERMES, "Done.\n</think>\n\n" + ANSWER),
    "qwen2.5": (HERMES, ANSWER),
    "qwen3": ("<think>\nI add.\n</think>\n\n" + HERMES, "<think>\nDone.\n</think>\n\n" + ANSWER),
    "qwen3-thinking": ("I add.\n</think>\n\n" + HERMES, "Done.\n</think>\n\n" + ANSWER),
    "qwen3.5": ("I add.\n</think>\n\n" + XML, "Done.\n</think>\n\n" + ANSWER),
    "qwen3-coder": (XML, ANSWER),
    "deepseek-r1": ("I add.\n</think>\n\n" + R1, ANSWER),
    "gpt-oss": (HARMONY_CALL, HARMONY_ANSWER),
    "smollm3": ("<think>\nI add.\n</think>\n" + HERMES, "<think>\nDone.\n</think>\n" + ANSWER),
    "llama3": ('{"name": "add", "parameters": ' + ARGS + "}", ANSWER),
    "hermes3": (HERMES, ANSWER),
    "mistral3": ("[THINK]I add.[/THINK][TOOL_CALLS]add[ARGS]" + ARGS, "[THINK]Done.[/THINK]" + ANSWER),
    "jinja": (HERMES, ANSWER),
}
THOUGHT = re.compile(
    r"<think>.*?</think>\s*|<\|channel\|>analysis<\|message\|>.*?<\|end\|><\|start\|>assistant|\[THINK\].*?\[/THINK\]",
    re.DOTALL,
)


def agent_for(name: str, turns: list[str]) -> tuple[Agent, ScriptedModel]:
    m = model(name, turns)
    return Agent(m, [add], examples=(), system_prompt=SYSTEM, tool_choice="auto", max_steps=4), m


@pytest.mark.parametrize("name", CASES)
def test_a_call_in_the_familys_syntax_runs(name: str) -> None:
    call, answer = TURNS[CASES[name][0]]
    agent, _ = agent_for(name, [call, answer])
    result = agent.run("What is 37 + 5?")
    assert [(c.name, c.arguments, c.output, c.error) for c in result.tool_calls] == [
        ("add", {"a": 37, "b": 5}, "42", False)
    ]
    assert result.answer == ANSWER


@pytest.mark.parametrize("name", CASES)
def test_the_call_parses_in_any_pieces(name: str) -> None:
    """Tags split across pieces are held back until they are complete."""
    fmt = for_template(template(name))
    call = TURNS[fmt.name][0]
    for size in (1, 3, 7):
        parser = fmt.parser([add.schema()], thinking=False, calls=True, calls_in_thought=False)
        events = [e for i in range(0, len(call), size) for e in parser.feed(call[i : i + size])] + parser.close()
        calls = [e for e in events if isinstance(e, ParsedCall | BadCall)]
        assert [(c.call.name, c.call.arguments) for c in calls if isinstance(c, ParsedCall)] == [
            ("add", {"a": 37, "b": 5})
        ]
        assert len(calls) == 1


MALFORMED = {
    "qwq": 'Hm.\n</think>\n\n<tool_call>\n{"name": "add", "arguments": {"a": 37,}}\n</tool_call>',
    "qwen3.5": "Hm.\n</think>\n\n<tool_call>\n<parameter=a>\n37\n</parameter>\n</tool_call>",
    "deepseek-r1": "Hm.\n</think>\n\n" + R1.replace(ARGS, '{"a": 37,'),
    "gpt-oss": "<|channel|>analysis<|message|>Hm.<|end|>" + HARMONY_TO + '{"a": 3',
    "llama3": '{"name": "add", "parameters": {"a": 37',
    "mistral3": '[THINK]Hm.[/THINK][TOOL_CALLS]add[ARGS]{"a": 37',
}


@pytest.mark.parametrize("name", [n for n, (f, _) in CASES.items() if f in MALFORMED])
def test_a_malformed_call_becomes_an_observation(name: str) -> None:
    family = CASES[name][0]
    agent, _ = agent_for(name, [MALFORMED[family], TURNS[family][0], TURNS[family][1]])
    result = agent.run("What is 37 + 5?")
    first, second = result.tool_calls
    assert first.error and first.output.startswith("error: ") and first.name == ""
    assert (second.name, second.output) == ("add", "42") and result.answer == ANSWER


@pytest.mark.parametrize("name", CASES)
def test_the_grammar_switches_on_at_the_familys_opener(name: str) -> None:
    agent, m = agent_for(name, list(TURNS[CASES[name][0]]))
    agent.run("What is 37 + 5?")
    fmt = for_template(template(name))
    assert m.grammars[0] is None  # reasoning and text run free
    grammar = fmt.grammar([add.schema()], opened=True)
    assert grammar is None or grammar in m.grammars[1:]


def test_xml_values_are_typed_by_the_schema() -> None:
    fmt = for_template(template("Qwen3.5-4B"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "n": {"type": "integer"}, "x": {"type": "number"}, "ok": {"type": "boolean"}, "items": {"type": "array"},
        "text": {"type": "string"}}}}}]  # fmt: skip
    body = (
        "\n<function=f>\n<parameter=n>\n7\n</parameter>\n<parameter=x>\n2.5\n</parameter>\n<parameter=ok>\n"
        "true\n</parameter>\n<parameter=items>\n[1, 2]\n</parameter>\n<parameter=text>\n12\nlines\n</parameter>\n"
        "</function>\n"
    )
    parsed = fmt.parse_call(body, tools)
    assert isinstance(parsed, ParsedCall)
    assert parsed.call.arguments == {"n": 7, "x": 2.5, "ok": True, "items": [1, 2], "text": "12\nlines"}


def template_messages(family: str) -> list[dict[str, object]]:
    """The first episode as the template takes it: no thoughts, the call as a structured call."""
    call = {"type": "function", "function": {"name": "add", "arguments": {"a": 37, "b": 5}}}
    calling: dict[str, object] = {"role": "assistant", "content": "", "tool_calls": [call]}
    if family == "deepseek-r1":
        calling["content"] = None  # else its template renders the empty content as a turn of its own
    if family == "smollm3":  # its template renders no calls: the call is the turn's text
        calling = {"role": "assistant", "content": HERMES}
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is 37 + 5?"},
        calling,
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "And 42 + 1?"},
    ]


NATIVE = [n for n, (f, _) in CASES.items() if f != "jinja"]


@pytest.mark.parametrize("name", NATIVE)
def test_a_conversation_renders_as_its_template_minus_the_thoughts(name: str) -> None:
    family = CASES[name][0]
    call, answer = TURNS[family]
    agent, m = agent_for(name, [call, answer, ANSWER])
    chat = agent.chat()
    chat.send("What is 37 + 5?")
    chat.send("And 42 + 1?")
    ours = THOUGHT.sub("", prompt_text(m, -1))
    expected = jinja(name, template_messages(family), [add.schema()], True, enable_thinking=m.thinking)
    assert ours == expected


@pytest.mark.parametrize("name", CASES)
def test_append_only_in_every_family(name: str) -> None:
    """After the first prompt, each step evaluates only what was added: nothing is re-rendered."""
    call, answer = TURNS[CASES[name][0]]
    agent, _ = agent_for(name, [call, answer, ANSWER])
    chat = agent.chat()
    first, second = chat.send("What is 37 + 5?"), chat.send("And 42 + 1?")
    steps = [*first.usage.per_step, *second.usage.per_step]
    assert len(steps) == 3 and steps[0].prompt_reused == 0
    for step in steps[1:]:
        assert step.prompt_evaluated == step.prompt_new > 0, (name, step)
        assert step.prompt_reused > steps[0].prompt_new


@pytest.mark.model
def test_every_familys_grammar_is_accepted_by_llama_cpp() -> None:
    """llama.cpp parses each family's call grammar, opened and forced (a bad one gives no sampler)."""
    import llama_cpp

    from agent.models.llama_cpp import LlamaCppModel

    vocab = LlamaCppModel(context_size=256).llm._model.vocab
    assert not llama_cpp.llama_sampler_init_grammar(vocab, b'root ::= "a" (', b"root")  # the check can fail
    properties = {
        "text": {"type": "string"},
        "tags": {"type": "array"},
        "kind": {"type": "string", "enum": ["a", "b"]},
        "ok": {"type": "boolean"},
    }
    parameters = {"type": "object", "properties": properties, "required": ["text"]}
    tools = [
        add.schema(),
        {"type": "function", "function": {"name": "note", "description": "Note.", "parameters": parameters}},
    ]
    for name in CASES:
        fmt = for_template(template(name))
        for opened in (True, False):
            grammar = fmt.grammar(tools, opened=opened)
            assert grammar is not None
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            assert sampler, (name, opened, grammar)
            llama_cpp.llama_sampler_free(sampler)


def test_gemma_is_known_by_its_architecture_when_it_carries_no_template() -> None:
    from agent.models.families import family

    assert family("", "gemma3") == "gemma" and family("") == "qwq"
    m = ScriptedModel([HERMES, ANSWER])
    agent = Agent(m, [add], examples=(), system_prompt=SYSTEM, chat_format="gemma", tool_choice="auto")
    result = agent.run("What is 37 + 5?")
    assert [(c.name, c.output) for c in result.tool_calls] == [("add", "42")] and result.answer == ANSWER
    text = agent.last_state["text"]
    assert text.startswith(f"<bos><start_of_turn>user\n{SYSTEM}\n\n# Tools\n")
    assert text.endswith(
        "<start_of_turn>model\n" + HERMES + "<end_of_turn>\n<start_of_turn>user\n<tool_response>\n42\n"
        "</tool_response><end_of_turn>\n<start_of_turn>model\n" + ANSWER + "<end_of_turn>\n"
    )
