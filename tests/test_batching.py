"""Several generations decoded together on one in-process model (`LlamaCppModel(sequences=N)`)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import numpy as np
import pytest

from agent.core.grammar import tool_call_grammar
from agent.models.llama_cpp import LlamaCppModel
from agent.models.protocol import Sampling
from tools import Registry, tool

pytestmark = pytest.mark.model

GREEDY = Sampling(temperature=0.0)
QUESTIONS = ["What is the capital of France?", "Name three colours.", "Count to five.", "Who wrote Hamlet?"]


@pytest.fixture(scope="module")
def batched() -> LlamaCppModel:
    return LlamaCppModel(seed=0, context_size=1024, sampling=GREEDY, sequences=4, prompt_cache=None)


@pytest.fixture(scope="module")
def alone() -> LlamaCppModel:
    return LlamaCppModel(seed=0, context_size=1024, sampling=GREEDY, prompt_cache=None)


def prompt(model: LlamaCppModel, question: str) -> list[int]:
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    text = f"{system}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return model.tokenize(text, special=True)


def tokens(model: LlamaCppModel, prompt: list[int], count: int, grammar: str | None = None) -> list[int]:
    with closing(model.generate(prompt, max_tokens=count, grammar=grammar)) as generation:
        return [piece.token for piece in generation]


def concurrently(model: LlamaCppModel, prompts: list[list[int]], count: int) -> list[list[int]]:
    start = threading.Barrier(len(prompts))

    def one(p: list[int]) -> list[int]:
        start.wait()
        return tokens(model, p, count)

    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(one, prompts))


def test_concurrent_generations_share_batches_and_each_is_its_own(batched: LlamaCppModel) -> None:
    prompts = [prompt(batched, q) for q in QUESTIONS]
    batcher = batched._batcher
    assert batcher is not None
    steps = batcher.steps
    together = concurrently(batched, prompts, 24)
    assert batcher.peak == 4  # four tokens drawn from one decode
    assert batcher.steps - steps < sum(map(len, together))
    apart = [tokens(batched, p, 24) for p in prompts]
    assert together == apart
    assert len({tuple(t) for t in together}) == 4


NEAR_TIE = 0.5
"""Logits apart that rounding may reorder: a batch's matrix shapes differ from one sequence's, and
on an AVX2 EPYC "What is the capital of France?" opens with 15319 at 24.068 against 504 at 23.934."""


def test_greedy_output_is_the_output_of_the_model_alone(batched: LlamaCppModel, alone: LlamaCppModel) -> None:
    prompts = [prompt(batched, q) for q in QUESTIONS]
    together = concurrently(batched, prompts, 32)
    for p, mine in zip(prompts, together, strict=True):
        theirs = tokens(alone, p, 32)
        if mine != theirs:  # only where the model alone is near a tie (a mixed-up sequence is not)
            at = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b)
            logits = last_logits(alone, p + theirs[:at])
            assert logits[theirs[at]] - logits[mine[at]] < NEAR_TIE, (at, mine, theirs)


def last_logits(model: LlamaCppModel, tokens: list[int]) -> np.ndarray:
    """The model's logits after `tokens`, read from llama.cpp directly (its cache forgotten around it)."""
    import llama_cpp

    llm = model.llm
    model.forget()
    llm.eval(tokens)
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).copy()
    model.forget()
    return logits


def test_a_prompt_that_opens_as_another_sequence_copies_it(batched: LlamaCppModel) -> None:
    batched.forget()
    shared = prompt(batched, "Tell me about the moon, the sun and the stars, at length, please.") * 3
    first = batched.generate(shared + batched.tokenize("A", special=False), max_tokens=4)
    list(first)
    assert first.reused == 0
    # Another sequence is free, but only the first holds the prefix: it is copied, not evaluated.
    hold = batched.generate(prompt(batched, "Hold a sequence."), max_tokens=64)
    next(iter(hold))
    second = batched.generate(shared + batched.tokenize("B", special=False), max_tokens=4)
    with closing(second):
        list(second)
    hold.close()
    assert second.reused == len(shared) and second.evaluated == 1


def test_episodes_started_together_evaluate_their_common_preamble_once(batched: LlamaCppModel) -> None:
    batched.forget()
    preamble = prompt(batched, "Tell me about the moon, the sun and the stars, at length, please.") * 3
    prompts = [preamble + batched.tokenize(f" Question {i}: why?", special=False) for i in range(3)]
    start = threading.Barrier(3)

    def one(p: list[int]) -> int:
        start.wait()
        with closing(batched.generate(p, max_tokens=2)) as generation:
            list(generation)
        return generation.evaluated

    with ThreadPoolExecutor(3) as pool:
        evaluated = sorted(pool.map(one, prompts))
    new = len(prompts[0]) - len(preamble)
    assert evaluated[-1] == len(prompts[0])  # the first read everything
    assert all(0 < e <= new for e in evaluated[:2])  # the others only (some of) their own part


def test_each_sequence_keeps_its_own_grammar(batched: LlamaCppModel) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: The first.
            b: The second.
        """
        return a + b

    grammar = tool_call_grammar(Registry([add]).schemas(), opened=False)
    p = prompt(batched, "Add 2 and 3 with the add tool.")
    start = threading.Barrier(2)

    def run(g: str | None) -> str:
        start.wait()
        with closing(batched.generate(p, max_tokens=60, grammar=g)) as generation:
            return "".join(piece.text for piece in generation)

    with ThreadPoolExecutor(2) as pool:
        constrained, free = pool.map(run, [grammar, None])
    assert constrained.startswith("<tool_call>") and '"name": "add"' in constrained
    assert not free.startswith("<tool_call>")


def test_an_abandoned_or_cancelled_generation_frees_its_sequence() -> None:
    model = LlamaCppModel(seed=0, context_size=512, sampling=GREEDY, sequences=2, prompt_cache=None)
    p = prompt(model, "Write a long story.")
    held = [model.generate(p, max_tokens=200) for _ in range(2)]
    for generation in held:
        next(iter(generation))
    held[0].close()  # its sequence goes back to the pool
    assert len(tokens(model, p, 5)) == 5
    model.cancel()  # ends the one still open
    assert len(list(held[1])) < 200
    assert len(tokens(model, p, 5)) == 5


def test_samples_run_at_once_and_each_keeps_its_seed() -> None:
    from agent.api import Agent

    def votes(sequences: int) -> tuple[tuple[str | None, ...], int]:
        model = LlamaCppModel(seed=0, context_size=1024, sequences=sequences, prompt_cache=None)
        agent = Agent(model, [], samples=3, max_steps=1, max_tokens=64)
        result = agent.run("What is 17 * 23?")
        assert result.votes is not None
        return result.votes.answers, model._batcher.peak if model._batcher else 1

    together, peak = votes(3)
    assert peak >= 2  # the samples' steps shared batches
    assert together == votes(1)[0]  # the same three episodes as one after another


def test_a_failing_decode_fails_its_generation_and_the_next_one_runs(
    batched: LlamaCppModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp

    from agent.models.protocol import ModelError

    p = prompt(batched, "Fail, then work.")
    monkeypatch.setattr(llama_cpp, "llama_decode", lambda ctx, batch: -3)
    with pytest.raises(ModelError, match="could not decode"):
        tokens(batched, p, 4)
    monkeypatch.undo()
    assert tokens(batched, p, 4) == tokens(batched, p, 4)  # its sequence was cleared, not left half-written
