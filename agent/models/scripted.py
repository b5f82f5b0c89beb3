"""A scripted stand-in for a language model: tests and benchmarks of the loop without llama.cpp.

`ScriptedModel` tokenizes one character per token and "generates" the turns it was given, in
order, one character at a time. Like llama.cpp it remembers what it evaluated last and reports
how much of each prompt it could reuse. It ignores grammars (scripts decide what gets written)
and samples nothing. When something is written into a turn it is generating (a closed thought, a
hint), it drops the rest of that turn and continues with the next one, as a model would react.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from agent.models.protocol import Generation, Piece, Sampling

END = -1


class ScriptedModel:
    """Plays back scripted assistant turns; records every prompt and grammar it was given."""

    def __init__(self, turns: Sequence[str], *, thinking: bool = False, context_size: int = 100_000) -> None:
        self.turns = list(turns)
        self.thinking = thinking
        self.context_size = context_size
        self.sampling = Sampling()
        self.name = "scripted"
        self.cache: list[int] = []
        self.prompts: list[list[int]] = []
        self.grammars: list[str | None] = []
        self._current: list[str] = []
        self.cancelled = False

    def cancel(self) -> None:
        """End the generation under way before its next token (as `LlamaCppModel.cancel`)."""
        self.cancelled = True

    def tokenize(self, text: str, special: bool) -> list[int]:
        return [ord(c) for c in text]

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        prompt = list(prompt)
        if self._current and prompt != self.cache:
            # Someone wrote into the turn (budget forcing, a hint): react with the next turn.
            self._current = []
        self.prompts.append(prompt)
        self.grammars.append(grammar)
        reused = 0
        for a, b in zip(self.cache, prompt, strict=False):
            if a != b:
                break
            reused += 1
        self.cache = list(prompt)
        return Generation(reused, len(prompt) - reused, self._play(max_tokens))

    def _play(self, max_tokens: int) -> Iterator[Piece]:
        if not self._current:
            if not self.turns:
                raise AssertionError("the script has no more turns")
            self._current = [*self.turns.pop(0), END]  # type: ignore[list-item]
        self.cancelled = False
        for _ in range(max_tokens):
            if self.cancelled:
                self._current = []
                return
            char = self._current.pop(0)
            if char == END:
                yield Piece(0, "", end=True)
                return
            self.cache.append(ord(char))
            yield Piece(ord(char), char)
        # Cut off by max_tokens: the rest of this turn is dropped, as a real model's would be.
        self._current = []
