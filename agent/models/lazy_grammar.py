"""Drawing the next token under a grammar that costs nothing until it refuses: `LazyGrammarSampler`.

This module samples from logits llama.cpp has already computed; it does not evaluate tokens,
write grammars (see `agent.core.grammar`) or know which sequence of a batch it serves.
"""

from __future__ import annotations

import ctypes
import math
import weakref
from collections.abc import Sequence
from typing import Any

from agent.models.copying import BIAS, CopyBias
from agent.models.protocol import Sampling


class LazyGrammarSampler:
    """Draws the next token; under a grammar, checks only the drawn token and redraws if refused.

    As llama.cpp's own `common_sampler_sample`: the sampler chain (top-k, top-p, min-p,
    temperature, then a seeded draw) runs on the free logits in C, and the grammar judges that
    single token. A refused token is drawn again under the grammar, first among the
    `NARROW_CANDIDATES` likeliest tokens (the grammar judges those few, the chain draws from what
    it allows), and over the whole vocabulary only when it allows none of them: measured on the
    embedded model, the grammar's choice ranked below 20 in most refusals and below 512 in all but
    one of 35, and a pass over the vocabulary costs about a quarter of a decoding step.

    Greedy decoding therefore picks exactly the token an eager grammar would (the best allowed
    token is the best allowed one among the likeliest, if any is allowed there). A redraw keeps
    the chain's top-k among allowed tokens ranked within `NARROW_CANDIDATES`: those an eager
    grammar would add below them carry almost no probability, and the lazy draw is not an eager
    one's distribution anyway (the free draw goes first). With `repeat_penalty` other than 1, a
    refused token still enters the penalty's history (the chain has already accepted it).

    Under a grammar, a token of spaces alone is refused outside a JSON string wherever the
    grammar allows another token: JSON's layout space then comes with what follows it (` "(`).
    Drawn alone after `"expression":`, a small model meant a bare number next and, with the
    quote forced, wrote `".2^16 - 1"`. (In a string, and before a number, a space is its own
    token: SmolLM2 has no ` 1`.) Inside a string, likewise, a token that closes it must open with
    the quote: tokens such as `)"` end the string with its last character, and a small model
    draws them after any parenthesis (`(48 / 6 + 7)"` for `(48 / 6 + 7) * 3`: `)"` 0.61, `)`
    0.21); split, the `)` leaves it free to go on, and a lone `"` closes the string when it is
    done (held-out arithmetic on the embedded model: 33 of 40 answers right before, 38 after).

    With a `quote` (the question), tokens that go on copying its arithmetic gain `copying.BIAS`
    in the free logits, and tokens that would split such a token lose it, inside a string and
    where one opens (`agent.models.copying`).
    """

    NARROW_CANDIDATES = 512
    """Likeliest tokens a redraw tries under the grammar before the whole vocabulary."""

    def __init__(
        self, llm: Any, sampling: Sampling, grammar: str | None, seed: int | None = None, quote: str = ""
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._c, self.llm = llama_cpp, llm
        s = sampling
        self.chain = _internals.LlamaSampler()
        if s.repeat_penalty != 1.0:
            self.chain.add_penalties(llm.n_vocab(), llm.last_n_tokens_size, s.repeat_penalty, 0.0, 0.0)
        if s.temperature <= 0:
            self.chain.add_greedy()
        else:
            self.chain.add_top_k(s.top_k)
            self.chain.add_top_p(s.top_p, 1)
            self.chain.add_min_p(s.min_p, 1)
            self.chain.add_temp(s.temperature)
            self.chain.add_dist(llm._seed if seed is None else seed)
        self.grammar: Any = None
        if grammar is not None:
            sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
            if not sampler:
                self.chain.close()
                raise ValueError("llama.cpp could not parse the grammar")
            self.grammar = sampler
            self._one = llama_cpp.llama_token_data(0, 0.0, 0.0)
            self._single = llama_cpp.llama_token_data_array(ctypes.pointer(self._one), 1, -1, False)
            self._all: Any = None
            self._narrow: Any = None
            self._spaces = [t[0] for k in range(1, 17) if len(t := llm.tokenize(b" " * k, add_bos=False)) == 1]
            self._closers = _closing_with_content(llm)
            self._written: str | None = None  # the content of the string being written, if one is
            self._escaped = self._value_next = False
            self._copying = CopyBias(quote, lambda text: llm.tokenize(text.encode(), add_bos=False))
        self.refused = 0
        """Tokens the grammar refused, each drawn again under it."""
        self.full_passes = 0
        """Refusals whose redraw took a pass of the grammar over the whole vocabulary."""

    def sample(self, index: int = -1) -> int:
        """The next token after the batch's token `index` (the last); accepted by the grammar, if any."""
        c, ctx = self._c, self.llm._ctx.ctx
        if self.grammar is not None and self._copying and (self._written is not None or self._value_next):
            self._favour_copying(index)
        token = int(c.llama_sampler_sample(self.chain.sampler, ctx, index))
        if self.grammar is None:
            return token
        one: Any = self._one  # ctypes fields take plain ints and floats
        one.id, one.logit, self._single.size, self._single.selected = token, 1.0, 1, -1
        c.llama_sampler_apply(self.grammar, ctypes.byref(self._single))
        if math.isinf(one.logit) or token in self._banned():
            self.refused += 1
            token = self._resample(index)
        c.llama_sampler_accept(self.grammar, token)
        for char in self.llm.detokenize([token]).decode(errors="replace"):
            if self._written is None:
                if char == '"':
                    self._written = ""
                elif not char.isspace():
                    self._value_next = char == ":"
            elif self._escaped:
                self._escaped, self._written = False, self._written + char
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                self._written, self._value_next = None, False
            else:
                self._written += char
        return token

    def _favour_copying(self, index: int) -> None:
        import numpy as np

        favoured, split = self._copying.tokens(self._written)
        if favoured:
            logits = self._c.llama_get_logits_ith(self.llm._ctx.ctx, index)  # the chain reads them next
            free = np.ctypeslib.as_array(logits, shape=(self.llm.n_vocab(),))
            free[favoured] += BIAS
            free[split] -= BIAS

    def _banned(self) -> Sequence[int]:
        """Tokens refused here wherever the grammar allows another (see the class docstring)."""
        return self._spaces if self._written is None else self._closers

    def _resample(self, index: int) -> int:
        import numpy as np
        from llama_cpp import _internals

        c, llm = self._c, self.llm
        if self._all is None:
            self._all = _internals.LlamaTokenDataArray(n_vocab=llm.n_vocab())
            self._narrow = c.llama_sampler_init_top_k(self.NARROW_CANDIDATES)
        logits = np.ctypeslib.as_array(c.llama_get_logits_ith(llm._ctx.ctx, index), shape=(llm.n_vocab(),))
        candidates, array = self._all.candidates, ctypes.byref(self._all.candidates)
        banned = logits.copy()
        banned[list(self._banned())] = -math.inf
        for free in (banned, logits):  # unbanned if nothing else fits
            self._all.copy_logits(free)
            c.llama_sampler_apply(self._narrow, array)  # the likeliest, sorted, in place
            c.llama_sampler_apply(self.grammar, array)
            if np.isinf(self._all.candidates_data.logit[: candidates.size]).all():
                self.full_passes += 1
                self._all.copy_logits(free)
                c.llama_sampler_apply(self.grammar, array)
            if not np.isinf(self._all.candidates_data.logit[: candidates.size]).all():
                break
        candidates.sorted = False  # refused tokens, now -inf, may lead: the chain sorts again
        candidates.selected = -1
        c.llama_sampler_apply(self.chain.sampler, array)
        return int(self._all.candidates_data.id[candidates.selected])

    def close(self) -> None:
        """Free the samplers."""
        self.chain.close()
        if self.grammar is not None:
            self._c.llama_sampler_free(self.grammar)
            self.grammar = None
            if self._narrow is not None:
                self._c.llama_sampler_free(self._narrow)
                self._narrow = None


_CLOSERS: weakref.WeakKeyDictionary[Any, frozenset[int]] = weakref.WeakKeyDictionary()


def _closing_with_content(llm: Any) -> frozenset[int]:
    """Tokens of `llm`'s vocabulary that end a JSON string after some of its content (`)"`, `."`).

    Read once per loaded model (a pass over the vocabulary: ~0.15 s for 49k tokens).
    """
    model = llm._model
    if model not in _CLOSERS:
        found = set()
        for token in range(llm.n_vocab()):
            text = llm.detokenize([token]).decode(errors="replace")
            at = text.find('"')
            if at > 0 and "\\" not in text[:at]:
                found.add(token)
        _CLOSERS[model] = frozenset(found)
    return _CLOSERS[model]
