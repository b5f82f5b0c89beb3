"""Warm starts and lazy grammar on the real embedded model: same answers, less work, nothing trusted blindly."""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import pytest

from agent.core.grammar import tool_call_grammar
from agent.models.lazy_grammar import LazyGrammarSampler
from agent.models.llama_cpp import LlamaCppModel
from agent.models.prompt_cache import PromptCache
from agent.models.protocol import Sampling
from tools import Registry, tool

pytestmark = pytest.mark.model

GREEDY = Sampling(temperature=0.0)
PREAMBLE = (
    "<|im_start|>system\nYou are a careful assistant. You answer questions about arithmetic, and you "
    "show each step of your working on its own line before you give the result.<|im_end|>\n"
)
QUESTION = "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n"


def answer(model: LlamaCppModel) -> tuple[list[int], int]:
    preamble = model.tokenize(PREAMBLE, True)
    model.preamble(preamble)
    generation = model.generate(preamble + model.tokenize(QUESTION, True), max_tokens=8)
    tokens = [p.token for p in generation]
    return tokens, generation.evaluated


def test_a_new_process_starts_from_the_saved_preamble_and_answers_alike(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    question = len(LlamaCppModel(context_size=512, prompt_cache=None).tokenize(QUESTION, True))
    cold, evaluated = answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache))
    assert evaluated > question and len(list(tmp_path.iterdir())) == 1  # read whole, then saved
    warm, evaluated = answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache))
    assert evaluated == question  # only the question was read
    assert warm == cold
    # The control: the same model without a cache reads the preamble again, and answers alike.
    plain, evaluated = answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=None))
    assert evaluated > question and plain == cold


def test_a_model_of_several_sequences_saves_and_loads_the_preamble_too(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    question = len(LlamaCppModel(context_size=512, prompt_cache=None).tokenize(QUESTION, True))
    plain, _ = answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=None))

    def batched() -> LlamaCppModel:
        return LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache, sequences=2)

    cold, evaluated = answer(batched())
    assert evaluated > question and len(list(tmp_path.iterdir())) == 1  # read whole, then saved
    warm, evaluated = answer(batched())
    assert evaluated == question and warm == cold == plain
    # llama.cpp would refuse the state of another layout (one KV stream): each keeps its own.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache))[0] == plain
        assert len(list(tmp_path.iterdir())) == 2
        assert answer(batched()) == (plain, question)


def test_a_corrupt_saved_state_is_ignored_with_a_warning(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    question = len(LlamaCppModel(context_size=512, prompt_cache=None).tokenize(QUESTION, True))
    cold, _ = answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache))
    (path,) = tmp_path.iterdir()
    blob = bytearray(path.read_bytes())
    for at in range(len(blob) // 2, len(blob), 4096):  # garbage in the KV data itself
        blob[at] ^= 0x5A
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="corrupt"):
        again, evaluated = answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache))
    assert again == cold and evaluated > question  # read afresh: the same answer
    assert path.exists() and path.read_bytes() != bytes(blob)  # and saved again, whole


def test_a_state_of_another_kv_type_is_not_used(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path)
    answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache))
    _, evaluated = answer(LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=cache, kv_cache="q8_0"))
    assert evaluated > 20 and len(list(tmp_path.iterdir())) == 2  # its own key: read whole and saved apart


@tool
def calculator(expression: str) -> str:
    """Evaluate arithmetic.

    Args:
        expression: The expression.
    """
    return expression


def test_lazy_grammar_picks_what_an_eager_grammar_picks_when_greedy() -> None:
    """Greedy decoding under the lazy check equals llama-cpp-python's grammar over the whole vocabulary."""
    from llama_cpp import LlamaGrammar

    model = LlamaCppModel(context_size=512, sampling=GREEDY, prompt_cache=None)
    grammar = tool_call_grammar(Registry([calculator]).schemas(), opened=False)
    prompt = model.tokenize("<|im_start|>user\nWhat is 6 * 7? Use a tool.<|im_end|>\n<|im_start|>assistant\n", True)
    eager = []
    for token in model.llm.generate(prompt, temp=0.0, grammar=LlamaGrammar.from_string(grammar, verbose=False)):
        eager.append(token)
        if len(eager) == 20:
            break
    model.forget()
    llm = model.llm
    llm.eval(prompt)
    lazy: list[int] = []
    with contextlib.closing(LazyGrammarSampler(llm, GREEDY, grammar)) as sampler:
        while len(lazy) < 20:
            lazy.append(sampler.sample())
            llm.eval(lazy[-1:])
        refused, full_passes = sampler.refused, sampler.full_passes
    assert lazy == eager
    assert refused > 0  # the model's own first choice was refused at least once: the redraw ran
    assert full_passes < refused  # and at least one redraw found its token among the likeliest
    text = model.llm.detokenize(lazy).decode()
    assert re.match(r'<tool_call>\n\{\s*"name":\s*"calculator",', text), text


@pytest.mark.parametrize("sampling", [GREEDY, Sampling(temperature=0.2, top_p=0.9, top_k=40, min_p=0.05)])
def test_a_redraw_the_likeliest_tokens_cannot_serve_takes_the_whole_vocabulary(sampling: Sampling) -> None:
    """Text the model would never write: the grammar allows none of its likeliest tokens, yet the
    sampler writes exactly that text, each redraw from a pass over every token."""
    model = LlamaCppModel(context_size=512, sampling=sampling, prompt_cache=None, seed=0)
    llm = model.llm
    llm.eval(model.tokenize("<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n", True))
    out: list[int] = []
    with contextlib.closing(LazyGrammarSampler(llm, sampling, 'root ::= "Zqxj vkw" [0-9]')) as sampler:
        while len(out) < 12:
            out.append(sampler.sample())
            if llm.detokenize(out).decode(errors="replace")[-1:].isdigit():
                break
            llm.eval(out[-1:])
        assert sampler.full_passes >= 1 and sampler.refused >= sampler.full_passes
    assert re.fullmatch("Zqxj vkw[0-9]", llm.detokenize(out).decode()), llm.detokenize(out)
