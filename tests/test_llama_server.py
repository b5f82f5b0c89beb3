"""The agent against llama.cpp's own server (`make llama-server`), started once here with 4 slots.

Token mode: the server's token ids are the in-process tokenizer's, its pieces come back as ids,
and the reuse figures are the server's own. Then an agent with a tool call, and a batch with 4
workers that answers every task, spread over the slots.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_server import running

from agent import Agent
from agent.cli import main
from agent.models.llama_server import LlamaServerModel
from agent.models.servers import connect
from agent.models.sources import embedded_model_path
from tools import default_tools

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(tmp_path_factory.mktemp("llama-server") / "server.log", slots=4) as url:
        yield url


def test_token_mode_speaks_the_models_own_tokens_and_reports_exact_reuse(server: str) -> None:
    from llama_cpp import Llama

    model = connect(server, seed=0)
    assert isinstance(model, LlamaServerModel) and model.slots == 4 and model.context_size == 4096
    text = "<|im_start|>user\nSay hello, <b>wörld</b> 123.<|im_end|>\n<|im_start|>assistant\n"
    local = Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    prompt = model.tokenize(text, True)
    assert prompt == local.tokenize(text.encode(), add_bos=False, special=True)
    assert model.tokenize("<|im_end|>", False) == local.tokenize(b"<|im_end|>", add_bos=False, special=False)
    generation = model.generate(prompt, max_tokens=40, grammar='root ::= "Hello there, how are you?"')
    pieces = list(generation)
    assert pieces[-1].end and pieces[-1].token == model.end_token
    ids = [p.token for p in pieces[:-1]]
    assert local.detokenize(ids).decode() == "".join(p.text for p in pieces) == "Hello there, how are you?"
    assert generation.reused + generation.evaluated == len(prompt)
    again = model.generate(prompt + ids, max_tokens=2)
    list(again)
    # The same slot holds prompt and answer: only the last token is evaluated again (llama.cpp needs its logits).
    assert (again.reused, again.evaluated) == (len(prompt) + len(ids) - 1, 1)


def test_the_agent_answers_through_llama_server_with_a_tool_call(server: str) -> None:
    model = connect(server, seed=0)
    agent = Agent(model, default_tools(["calculator"]), max_steps=3, approval="never")
    result = agent.run("What is 37 * 89 + 12?")
    # What the tiny model writes into the call varies with the server's sampling; that it calls, and
    # that the call's result goes back to it through the server, does not.
    assert result.tool_calls and result.tool_calls[0].name == "calculator" and not result.tool_calls[0].error
    assert result.answer is not None and len(result.stats["per_step"]) >= 2
    first, second = result.stats["per_step"][:2]
    # The server's own counts add up to each prompt exactly: step 1's is all new, step 2's is
    # step 1's prompt and answer plus what is new, of which the server re-read little more than the new part.
    assert first["prompt_reused"] + first["prompt_evaluated"] == first["prompt_new"]
    step_two = first["prompt_new"] + first["generated"] + second["prompt_new"]
    assert second["prompt_reused"] + second["prompt_evaluated"] == step_two
    assert second["prompt_new"] <= second["prompt_evaluated"] <= second["prompt_new"] + 2


def test_batch_with_four_workers_answers_every_task(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    questions = [f"What is {a} * {b} + {c}?" for a, b, c in [(37, 89, 12), (12, 12, 1), (25, 4, 3), (7, 8, 9)]]
    tasks.write_text("".join(json.dumps({"id": i, "question": q}) + "\n" for i, q in enumerate(questions)))
    argv = ["batch", str(tasks), "-o", str(out), "--workers", "4", "--model", f"openai:{server}",
            "--tools", "calculator", "--max-steps", "3", "--seed", "0", "--ctx", "4096"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(int(r["id"]) for r in records) == list(range(4))
    assert all(r["answer"] is not None and r["tool_calls"] for r in records)
    assert "[4/4] 4 answered" in capsys.readouterr().err


def test_chat_mode_against_llama_servers_chat_endpoint(server: str) -> None:
    from agent.models.openai_chat import OpenAIChatModel

    model = OpenAIChatModel(server, seed=0, context_size=4096)
    result = Agent(model, [], max_steps=1, examples=(), max_tokens=24).run("Say hello.")
    assert result.answer  # the server rendered the messages with the model's template and answered
    assert "<|im_start|>" not in result.answer and "<|im_end|>" not in result.answer
