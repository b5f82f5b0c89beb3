"""One assistant turn as it is generated, and the controls that steer a reasoning model inside it.

`Turn.run` streams the model's pieces through the parser: free text while it thinks, a grammar
the moment it opens `<tool_call>` (or from the start when a call is forced). Inside the thought
it applies `Reasoning` controls by writing into the turn, never by re-rendering it:

- a thinking budget (s1's budget forcing): at N thinking tokens the thought is closed for the
  model, which then answers; the count never exceeds N;
- a minimum: a thought that ends too early has its closing tag replaced by "Wait";
- tool hints (START): "Wait, maybe using Python here is a good idea." after heavy arithmetic
  or a long stretch without a tool.

A turn stops as soon as a closed call repeats one made before (in this turn or the episode): a
model that writes the same call twice is looping, and more copies would only cost time. Text
that repeats itself (`LOOP_SPAN`) stops the turn too. A turn
asked for the final answer (`stop_at_call`) stops at a `<tool_call>`: what came before is the
answer.

This module decides nothing about the episode (steps, final answers, tools run): see
`agent.core.graph`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from agent.core.parse import BadCall, CallOpened, Parsed, ParsedCall, StreamParser
from agent.core.records import AnswerText, Call, PromptRead, ReasoningText
from agent.core.settings import Controls
from agent.models.protocol import QUOTE, Generation, Model

MAX_CALL_TOKENS = 1536
"""A call body longer than this is cut off and reported to the model as unclosed; a safety net
only, as the call grammar bounds every argument (a Python cell, the longest, fits)."""

LOOP_SPAN, LOOP_WINDOW, LOOP_REPEATS = 80, 2000, 3
"""A turn whose last `LOOP_SPAN` characters already occurred `LOOP_REPEATS` times within its last
`LOOP_WINDOW` is looping (a small model repeating a sentence until the budget): it stops there."""

# Products and quotients of multi-digit numbers: where models slip and a tool would not.
HEAVY_ARITHMETIC = re.compile(r"\d{2,}(?:[.,]\d+)?\s*(?:[×*/÷]|\\times|\\cdot)\s*\d{2,}")


class Turn:
    """One assistant turn being generated, with what it produced and what it cost."""

    def __init__(
        self,
        model: Model,
        parser: StreamParser,
        emit: Callable[[Any], None],
        controls: Controls | None = None,
        *,
        thinking_left: int | None = None,
        earlier: Iterable[Call] = (),
        stop_at_call: bool = False,
        quote: str = "",
    ) -> None:
        self.model, self.parser, self.emit, self.controls = model, parser, emit, controls or Controls()
        self.thinking_left = thinking_left
        self.earlier = [(c.name, c.arguments) for c in earlier]
        self.stop_at_call = stop_at_call
        self.quote = quote  # what its calls are likely to copy: the question (see `QUOTE`)
        self.repeated = False  # a closed call repeated an earlier one: the turn stops there
        self.tokens: list[int] = []
        self.kinds: list[str] = []  # per token: think, tag (</think>), content, call, or ours (written by us)
        self.counts: Counter[str] = Counter()  # of self.kinds, kept as it changes: read at every token
        self.ends: list[int] = []  # per token: where its text ends in self.text
        self.text = self.reasoning = self.content = ""
        self.calls: list[ParsedCall | BadCall] = []
        self.evaluated = self.reused = 0
        self.prefill_seconds = 0.0
        self.finished = False
        self.limit = 0
        self.hinted = False
        self.forced_close = False

    @property
    def thinking_tokens(self) -> int:
        """Tokens the model wrote inside its thought this turn."""
        return self.counts["think"]

    @property
    def generated(self) -> int:
        """Tokens the model wrote this turn (not those we wrote for it)."""
        return len(self.kinds) - self.counts["ours"]

    def run(
        self,
        prompt: list[int],
        limit: int,
        deadline: float | None,
        *,
        open_grammar: str | None,
        forced_grammar: str | None,
    ) -> None:
        """Generate until the turn ends, `limit` generated tokens, or `deadline` (`time.monotonic`).

        Once its thought is closed at a budget, the model has `controls.answer_tokens` more to answer.
        """
        began = time.monotonic()
        self.limit = limit
        if self.parser.mode == "think" and self.thinking_left == 0:
            self._close_thought()
        # An instruct model is forced from its first token; a thinking one once its thought closes.
        grammar = forced_grammar if self.parser.mode != "think" and not self.parser.thought_expected else None
        first = True
        call_tokens = 0  # tokens inside the current call body
        since_tool = 0  # thinking tokens since the turn began (a tool call ends a turn)
        while self.generated < self.limit:
            quoting = QUOTE.set(self.quote)
            try:
                gen = self.model.generate(prompt + self.tokens, max_tokens=self.limit - self.generated, grammar=grammar)
            finally:
                QUOTE.reset(quoting)
            if first:  # the step's prompt: the status line says what the wait before its first token is
                gen.on_prompt = self._prompt_read
            restart = False
            for piece in gen:
                if first:  # later generations in this turn only re-enter after a switch
                    self.prefill_seconds, first = time.monotonic() - began, False
                    self.evaluated, self.reused = gen.evaluated, gen.reused
                if piece.end:
                    if self.parser.mode == "think" and self.thinking_tokens < self.controls.min_thinking:
                        self._say(self._wait_text())  # it tried to stop thinking by ending the turn
                        restart = True
                    else:
                        self.finished = True
                    break
                closed, kind = self.parser.thought_closed, self.parser.mode
                self._append(piece.token, piece.text, kind)
                call_tokens = call_tokens + 1 if kind == "call" else 0
                opened = False
                for event in self.parser.feed(piece.text):
                    if isinstance(event, CallOpened):
                        opened = True
                        if grammar is None and open_grammar:
                            grammar, restart = open_grammar, True
                    self._take(event)
                if self.repeated or (opened and self.stop_at_call) or (kind != "call" and self._looping()):
                    restart = False
                    break
                if kind == "think" or self.parser.mode == "think":  # only a thought has controls
                    since_tool += kind == "think"
                    restart = self._steer_thought(closed, since_tool) or restart
                if grammar is None and forced_grammar and self.parser.thought_closed:
                    grammar, restart = forced_grammar, True
                if restart or call_tokens > MAX_CALL_TOKENS or (deadline is not None and time.monotonic() > deadline):
                    break
            gen.close()
            if not restart:
                break
        for event in self.parser.close():
            self._take(event)

    def _steer_thought(self, closed: bool, since_tool: int) -> bool:
        """Apply the thought's controls after a piece; True when the generation must restart."""
        restart = False
        if not closed and self.parser.thought_closed:
            self._relabel_closing_tag()
            if self.thinking_tokens < self.controls.min_thinking:
                self._extend_thought()
                restart = True
        elif self._at_thinking_budget():
            self._close_thought()
            restart = True
        if self.parser.mode == "think" and not self.hinted and self._wants_hint(since_tool):
            self._say("\n\n" + str(self.controls.hint) + "\n")
            self.hinted = restart = True
        return restart

    def _looping(self) -> bool:
        tail = self.text[-LOOP_SPAN:]
        return len(tail) == LOOP_SPAN and self.text[-LOOP_WINDOW:].count(tail) > LOOP_REPEATS

    def answer(self) -> str:
        """The answer text; a model that ended its turn without closing its thought answered in it."""
        if self.content.strip() or self.parser.thought_closed or not self.finished:
            return self.content.strip()
        return self.reasoning.strip()

    def _append(self, token: int, text: str, kind: str) -> None:
        self.tokens.append(token)
        self.kinds.append(kind)
        self.counts[kind] += 1
        self.text += text
        self.ends.append(len(self.text))

    def _say(self, text: str) -> None:
        """Write into the turn for the model: structure allowed, so `</think>` is its real token."""
        for token in self.model.tokenize(text, True):
            self.kinds.append("ours")
            self.counts["ours"] += 1
            self.tokens.append(token)
            self.ends.append(len(self.text))
        self.text += text
        if self.ends:
            self.ends[-1] = len(self.text)
        for event in self.parser.feed(text):
            self._take(event)

    def _at_thinking_budget(self) -> bool:
        return (
            self.parser.mode == "think"
            and self.thinking_left is not None
            and self.thinking_tokens >= self.thinking_left
        )

    def _close_thought(self) -> None:
        self.forced_close = True
        self._say(self.controls.close_text)
        self.limit = min(self.limit, self.generated + self.controls.answer_tokens)

    def _relabel_closing_tag(self) -> None:
        """The tokens of `</think>` close the thought; they are not part of it."""
        at = self.text.rfind(self.parser.think_close)
        i = len(self.kinds)
        while i and self.ends[i - 1] > at and self.kinds[i - 1] == "think":
            i -= 1
            self.kinds[i] = "tag"
            self.counts["think"] -= 1
            self.counts["tag"] += 1

    def _extend_thought(self) -> None:
        """Take back the early `</think>` (and what followed) and write "Wait" instead (s1)."""
        at = self.text.rfind(self.parser.think_close)
        keep = sum(1 for end in self.ends if end <= at)
        self.counts.subtract(self.kinds[keep:])
        del self.tokens[keep:], self.kinds[keep:], self.ends[keep:]
        self.text = self.text[: self.ends[-1] if self.ends else 0]
        self.content = ""
        self.parser.reopen_thought()
        self._say(self._wait_text())

    def _wait_text(self) -> str:
        return ("" if self.text.endswith(("\n", " ")) else "\n") + self.controls.wait_text

    def _wants_hint(self, since_tool: int) -> bool:
        c = self.controls
        if not isinstance(c.hint, str):  # the facade resolved True to START's hint text
            return False
        if c.hint_after is not None and since_tool >= c.hint_after:
            return True
        last_line = self.reasoning[self.reasoning.rfind("\n") + 1 :]
        return c.hint_on_arithmetic and bool(HEAVY_ARITHMETIC.search(last_line))

    def _prompt_read(self, gen: Generation) -> None:
        self.emit(PromptRead(gen.evaluated, gen.reused, gen.saved_cache))

    def _take(self, event: Parsed) -> None:
        if isinstance(event, ReasoningText):
            self.reasoning += event.text
            self.emit(event)
        elif isinstance(event, AnswerText):
            self.content += event.text
            self.emit(event)
        elif isinstance(event, ParsedCall | BadCall):
            if isinstance(event, ParsedCall):
                made = [(c.call.name, c.call.arguments) for c in self.calls if isinstance(c, ParsedCall)]
                self.repeated = (event.call.name, event.call.arguments) in self.earlier + made
            self.calls.append(event)
