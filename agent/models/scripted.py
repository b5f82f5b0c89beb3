"""Stand-ins for a language model: tests and benchmarks of the loop without llama.cpp.

Both tokenize one character per token and, like llama.cpp, remember what they evaluated last
and report how much of each prompt they could reuse; both ignore grammars and sample nothing.
`ScriptedModel` "generates" the turns it was given, in order, one character at a time: when
something is written into a turn it is generating (a closed thought, a hint), it drops the rest
of that turn and continues with the next one, as a model would react. `FunctionModel` answers
each generation from the prompt itself, `respond(prompt_text) -> text`, so a test can say what
the model does in what situation instead of in what order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

from agent.models.chatml import IM_START, THINK_OPEN
from agent.models.families import default_thinking, family, family_sampling
from agent.models.protocol import Generation, Piece, common_prefix

END = -1
ASSISTANT = IM_START + "assistant\n"


class _Characters:
    """One token per character; the cache and prompt bookkeeping both stand-ins share."""

    name = "scripted"
    seed: int | None = None
    parallel = False

    def __init__(self, *, thinking: bool | None, context_size: int, chat_template: str, bos_token: str = "") -> None:
        # As a GGUF's: the family of its template says whether it thinks and how it samples.
        self.family = family(chat_template)
        self.thinking = default_thinking(chat_template) if thinking is None else thinking
        self.context_size = context_size
        self.chat_template = chat_template
        self.bos_token = bos_token
        """The text of its begin-of-sequence token, as a template's `bos_token` reads it."""
        self.sampling = family_sampling(self.family, self.thinking)
        self.cache: list[int] = []
        self.prompts: list[list[int]] = []
        """Every prompt it was given, in order."""
        self.grammars: list[str | None] = []
        """The grammar each prompt came with."""
        self.cancelled = False

    def cancel(self) -> None:
        """End the generation under way before its next token (as `LlamaCppModel.cancel`)."""
        self.cancelled = True

    def tokenize(self, text: str, special: bool) -> list[int]:
        return [ord(c) for c in text]

    def reseed(self, seed: int) -> None:
        """Nothing to reseed: what it writes is decided by the script."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "context_size": self.context_size,
            "thinking": self.thinking,
            "chat_format": self.family,
            "sampling": asdict(self.sampling),
        }

    def _started(self, prompt: list[int], grammar: str | None) -> int:
        """Record a generation's prompt; returns how much of it the cache held."""
        self.prompts.append(prompt)
        self.grammars.append(grammar)
        reused = common_prefix(self.cache, prompt)
        self.cache = list(prompt)
        return reused

    def _stream(self, text: list[Any], max_tokens: int) -> Iterator[Piece]:
        """Stream `text` (consumed as it goes) up to an END, `max_tokens` characters or `cancel()`."""
        self.cancelled = False
        for _ in range(max_tokens):
            if self.cancelled:
                text.clear()
                return
            char = text.pop(0)
            if char == END:
                yield Piece(0, "", end=True)
                return
            self.cache.append(ord(char))
            yield Piece(ord(char), char)


class ScriptedModel(_Characters):
    """Plays back scripted assistant turns; records every prompt and grammar it was given.

    `chat_template` (and `bos_token`) make it a stand-in for a GGUF that carries them: the agent
    picks the family's chat format, thinking mode and sampling from it as it would for the file.
    """

    def __init__(
        self,
        turns: Sequence[str],
        *,
        thinking: bool | None = None,
        context_size: int = 100_000,
        chat_template: str = "",
        bos_token: str = "",
    ) -> None:
        super().__init__(thinking=thinking, context_size=context_size, chat_template=chat_template, bos_token=bos_token)
        self.turns = list(turns)
        self._current: list[Any] = []

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        prompt = list(prompt)
        if self._current and prompt != self.cache:
            # Someone wrote into the turn (budget forcing, a hint): react with the next turn.
            self._current = []
        reused = self._started(prompt, grammar)
        return Generation(reused, len(prompt) - reused, self._play(max_tokens))

    def _play(self, max_tokens: int) -> Iterator[Piece]:
        if not self._current:
            if not self.turns:
                raise AssertionError("the script has no more turns")
            self._current = [*self.turns.pop(0), END]
        yield from self._stream(self._current, max_tokens)
        # Ended, or cut off by max_tokens: then the rest of this turn is dropped, as a real model's would be.
        self._current = []


class FunctionModel(_Characters):
    """Answers from the prompt: `respond(prompt_text)` gives the assistant turn the model writes.

    `respond` sees exactly what the model would read, and returns the whole turn after its
    opening (after `<think>` for a thinking model). When the prompt already holds the start of
    that turn (generation resumed after a grammar switch), the model continues where it stands;
    when someone wrote something else into the turn, `respond` sees that and decides.
    """

    def __init__(
        self,
        respond: Callable[[str], str],
        *,
        thinking: bool | None = None,
        context_size: int = 100_000,
        chat_template: str = "",
    ) -> None:
        super().__init__(thinking=thinking, context_size=context_size, chat_template=chat_template)
        self.respond = respond
        self.name = "function"

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        prompt = list(prompt)
        reused = self._started(prompt, grammar)
        text = "".join(map(chr, prompt))
        reply = self.respond(text)
        written = text[text.rfind(ASSISTANT) + len(ASSISTANT) :] if ASSISTANT in text else ""
        if self.thinking:
            written = written.removeprefix(THINK_OPEN + "\n")
        if written and reply.startswith(written):
            reply = reply[len(written) :]
        return Generation(reused, len(prompt) - reused, self._stream([*reply, END], max_tokens))
