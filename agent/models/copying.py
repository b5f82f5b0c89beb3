"""Which tokens go on copying the question's arithmetic inside a call: `CopyBias`.

A small model writes a calculator call by copying the expression from the question, and slips
where a group or an operator comes next. Measured on the embedded SmolLM2: `3 * (14 + (6 * 7))`
came out as `3 * (14 + 7)` on every seed, `(81 / 9 - 2) * 11` as `(81 / 9) * 11` (after
`(81 / 9`, `)` 0.84 against ` -` 0.13), and `(900 - 150) / 25` lost its group on most. The
sampler adds `BIAS` to the logits of the tokens named here: the next token of the question's
arithmetic after the longest stretch of it the string ends with. A model that computes something
of its own (an intermediate value, a word problem's expression) writes what matches nothing and
gets no bias; one that copies is held to the copy.

It is also held to the tokenizer's split. A token that copies only the start of the favoured one
(`)` where the question goes on `))`) loses `BIAS`: after such a split the small model loses its
place (measured: after `(23 + 4` it took `)` over `))`, 36.29 to 36.21, and then wrote ` /` at 30.6
against a second `)` under 27).

This module names tokens; it does not sample, know JSON's grammar or read the logits
(`agent.models.lazy_grammar` applies it, inside grammar-constrained strings only).
"""

from __future__ import annotations

import re
from collections.abc import Callable

BIAS = 3.0
"""Added to a copying token's logit (20 times its odds). On the embedded model's held-out arithmetic
(five sets of ten, seeds 0, 1 and 2): 150 of 150 right at 3, 138 without; a bias of 2 lost 3 of
the 70 it was tried on."""


ARITHMETIC = re.compile(r"[\d(][\d+*/^()., -]*[\d)]|\d")
"""A stretch of the question a call may copy: numbers, operators and parentheses."""

_AHEAD = 12
"""Characters of a continuation tokenized to find its first token (none is longer here)."""


class CopyBias:
    """The tokens that continue copying the arithmetic of `source`, a question."""

    def __init__(self, source: str, tokenize: Callable[[str], list[int]]) -> None:
        self.spans = [m.group() for m in ARITHMETIC.finditer(source)]
        self._longest = max(map(len, self.spans), default=0)
        self._tokenize = tokenize
        self._starts: dict[str, tuple[int | None, list[int]]] = {}

    def __bool__(self) -> bool:
        return bool(self.spans)

    def tokens(self, written: str | None) -> tuple[list[int], list[int]]:
        """Tokens to favour next, and tokens that would split one of them: `written` is the string's
        content so far, or None where a string (with the space and quote JSON writes before it)
        may open."""
        if written is None:
            continuations = [f' "{span}' for span in self.spans]
        elif not written:
            continuations = self.spans
        else:
            continuations = self._after(written)
        starts = [self._start(c[:_AHEAD]) for c in continuations if c]
        favoured = {t for t, _ in starts if t is not None}
        return sorted(favoured), sorted({t for _, split in starts for t in split} - favoured)

    def _after(self, written: str) -> list[str]:
        """What follows, in the spans, the longest end of `written` they contain (every place it occurs)."""
        for length in range(min(len(written), self._longest), 0, -1):
            end = written[-length:]
            found = [span[at + length :] for span in self.spans for at in _occurrences(span, end)]
            if found:
                return found
        return []

    def _start(self, text: str) -> tuple[int | None, list[int]]:
        """The first token of `text`, and the shorter tokens that each spell a beginning of it."""
        if text not in self._starts:
            first, shorter = next(iter(self._tokenize(text)), None), []
            for end in range(1, len(text)):
                tokens = self._tokenize(text[:end])
                if tokens[0] == first:
                    break
                if len(tokens) == 1:
                    shorter.append(tokens[0])
            self._starts[text] = first, shorter
        return self._starts[text]


def _occurrences(text: str, part: str) -> list[int]:
    at, found = text.find(part), []
    while at >= 0:
        found.append(at)
        at = text.find(part, at + 1)
    return found
