"""Several generations decoded together on one llama.cpp context: `Batcher` (continuous batching).

Each generation (one step of an episode) takes one of the context's sequences, and a single decode
thread evaluates the next token of every active sequence in one `llama_batch`: a model bound by
memory bandwidth reads its weights once for all of them, so four sequences cost little more than
one. A generation that ends (its episode now waits for a tool) leaves the batch and frees its
sequence, but its KV cells stay: the episode's next step, which extends the same transcript, takes
that sequence back and evaluates only what is new. A prompt that opens as another sequence does
(every episode's preamble) is copied from it with `llama_memory_seq_cp` instead of evaluated
again, and one that opens with the saved preamble loads it (`SavedPrefix`, for warm starts).
Every generation keeps its own sampler chain, seed and grammar (`LazyGrammarSampler`).

Each sequence has a KV stream of its own, so that a sequence decodes exactly as it would alone:
in one unified stream every token attends over every sequence's cells (masked), and the longer
reduction rounds differently.

This module does not load models, choose sampling or know chat formats (see
`agent.models.llama_cpp`, which owns the context and hands it here).
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.models.protocol import ModelError, Piece, common_prefix

BACKLOG = 64
"""Pieces a generation may run ahead of its reader before its sequence sits out of the batch."""

MIN_COPY = 32
"""A shared prefix at least this much longer than a free sequence's own is copied, not evaluated."""


_ADMITTED, _END = object(), object()


class SavedPrefix(Protocol):
    """A prompt prefix whose KV state is kept on disk (the agent's preamble; see `LlamaCppModel`)."""

    def saved_length(self, prompt: Sequence[int]) -> int:
        """The length of the kept prefix `prompt` opens with; 0 if it opens with none."""
        ...

    def load_saved(self, seq: int) -> bool:
        """Clear sequence `seq` and load the kept state into it; False if there is none."""
        ...

    def save(self, seq: int) -> None:
        """Keep the state of sequence `seq`, which holds exactly the prefix."""
        ...


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    max_tokens: int
    sampler: Any
    ticket: int
    seq: int = -1
    todo: list[int] = field(default_factory=list)
    """Tokens to evaluate before the next draw: the new part of the prompt, then each drawn token."""
    reused: int = 0
    loaded: bool = False
    """Whether the reused tokens came from a state saved by an earlier process."""
    save_at: int = 0
    """Where the kept prefix ends, to be saved once evaluated (0: nothing to save)."""
    drawn: int = 0
    inbox: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    """What the reader gets: `_ADMITTED`, then pieces, an error perhaps, and `_END`."""
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    finished: bool = False
    closed: bool = False
    """The reader has gone (it closed the generation): the sequence is freed at the next step."""


class Batcher:
    """Interleaves the generations of several threads in shared batches on one context.

    `llm` is a `llama_cpp.Llama` whose context holds `sequences` sequences (`sequence_context`).
    `cancelled()` gives the ticket up to
    which generations are cancelled (see `LlamaCppModel.cancel`); `saved` keeps the preamble's KV
    state across processes (warm starts).
    """

    def __init__(
        self, llm: Any, sequences: int, cancelled: Callable[[], int], saved: SavedPrefix | None = None
    ) -> None:
        import llama_cpp

        self._c, self.llm, self.sequences, self._cancelled = llama_cpp, llm, sequences, cancelled
        self._saved = saved
        self._batch_size = llm.n_batch
        self._batch = llama_cpp.llama_batch_init(self._batch_size, 0, 1)
        llm._stack.callback(llama_cpp.llama_batch_free, self._batch)  # freed with the model
        self._tokens: list[list[int]] = [[] for _ in range(sequences)]
        """What each sequence's KV cells hold, position by position."""
        self._owner: list[_Request | None] = [None] * sequences
        self._used = [0] * sequences
        """The ticket of each sequence's latest generation (0: never used)."""
        self._pending: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.steps = 0
        """Batches decoded so far (for tests and `bench`)."""
        self.peak = 0
        """The most sequences decoded in one batch so far."""

    def forget(self) -> None:
        """Drop every sequence's cells (nothing may be running)."""
        with self._cond:
            self._c.llama_memory_clear(self._c.llama_get_memory(self.llm._ctx.ctx), True)
            self._tokens = [[] for _ in range(self.sequences)]

    def stream(self, prompt: list[int], max_tokens: int, sampler: Any, ticket: int, report: Any) -> Iterator[Piece]:
        """Pieces of one generation; it joins the batch when first asked for a piece.

        `sampler` is the generation's own (closed here when it ends); `report` is the
        `Generation` (a weak proxy) whose `reused`/`evaluated` are filled in once it has a sequence.
        """
        if not prompt:
            sampler.close()
            raise ValueError("a generation continues a prompt: this one is empty")
        request = _Request(prompt, max_tokens, sampler, ticket)
        with self._cond:
            self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        try:
            while (item := request.inbox.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                if item is _ADMITTED:
                    with contextlib.suppress(ReferenceError):  # nobody kept the Generation to read it
                        report.reused, report.evaluated = request.reused, len(prompt) - request.reused
                        report.saved_cache = request.loaded
                        report.prompt_known()
                    continue
                yield item
        finally:
            request.closed = True
            with self._cond:
                self._cond.notify_all()

    # The decode thread: everything below runs on it alone, and only it touches the context.

    def _run(self) -> None:
        while True:
            with self._cond:
                try:
                    self._admit()
                except Exception as exc:  # never leave a reader waiting on a thread that is gone
                    self._fail([*self._pending, *filter(None, self._owner)], exc)
                    self._pending.clear()
                active = [r for r in self._owner if r is not None]
                if not active and not self._pending:
                    self._thread = None
                    return
                ready = [r for r in active if r.inbox.qsize() < BACKLOG]
                if not ready:
                    self._cond.wait(0.05)
                    continue
            try:
                self._step(ready)
            except Exception as exc:  # a failed decode fails its generations, never the thread
                with self._cond:
                    self._fail(ready, exc)

    def _fail(self, requests: list[_Request], exc: Exception) -> None:
        for request in requests:
            if request.seq >= 0:  # what its cells hold is unknown now
                self._tokens[request.seq] = []
                self._c.llama_memory_seq_rm(self._memory(), request.seq, -1, -1)
            request.inbox.put(exc if isinstance(exc, ModelError) else ModelError(f"llama.cpp: {exc}"))
            self._finish(request)

    def _memory(self) -> Any:
        return self._c.llama_get_memory(self.llm._ctx.ctx)

    def _admit(self) -> None:
        """Give free sequences to waiting generations; end those cancelled or abandoned."""
        cancelled = self._cancelled()
        for request in self._owner:
            if request is not None and (request.closed or request.ticket <= cancelled):
                self._finish(request)
        for request in list(self._pending):
            if request.closed or request.ticket <= cancelled:
                self._pending.remove(request)
                self._finish(request)
                continue
            free = [s for s in range(self.sequences) if self._owner[s] is None]
            if not free:
                return
            if self._reading_same_prefix(request):
                continue
            self._pending.remove(request)
            self._place(request, free)

    def _reading_same_prefix(self, request: _Request) -> bool:
        """Whether a sequence is evaluating a prompt that opens as this one does, well beyond what
        any sequence holds yet: episodes started together then evaluate their preamble once."""
        held = max(common_prefix(tokens, request.prompt) for tokens in self._tokens)
        return any(
            r is not None and len(r.todo) > 1 and common_prefix(r.prompt, request.prompt) >= held + MIN_COPY
            for r in self._owner
        )

    def _place(self, request: _Request, free: list[int]) -> None:
        prompt, memory, c = request.prompt, self._memory(), self._c
        seq = max(free, key=lambda s: common_prefix(self._tokens[s], prompt))
        shared = common_prefix(self._tokens[seq], prompt)
        if shared < MIN_COPY:  # nothing worth keeping here: take the sequence idle the longest
            seq = min(free, key=lambda s: self._used[s])
            shared = common_prefix(self._tokens[seq], prompt)
        source = max(range(self.sequences), key=lambda s: common_prefix(self._tokens[s], prompt))
        copied = common_prefix(self._tokens[source], prompt)
        if copied >= shared + MIN_COPY:
            # Sequences live in KV streams of their own, and llama.cpp copies a stream only whole.
            c.llama_memory_seq_rm(memory, seq, -1, -1)
            c.llama_memory_seq_cp(memory, source, seq, -1, -1)
            self._tokens[seq], shared = list(self._tokens[source]), copied
        kept = self._saved.saved_length(prompt) if self._saved is not None else 0
        if kept > shared:
            if self._saved is not None and self._saved.load_saved(seq):
                self._tokens[seq], shared, request.loaded = prompt[:kept], kept, True
            else:  # evaluated here, then saved for the next process
                self._tokens[seq], shared, request.save_at = [], 0, kept
        if shared == len(prompt) and shared:  # the last prompt token is evaluated again for its logits
            shared -= 1
        c.llama_memory_seq_rm(memory, seq, shared, -1)
        del self._tokens[seq][shared:]
        request.seq, request.todo, request.reused = seq, prompt[shared:], shared
        self._owner[seq] = request
        self._used[seq] = request.ticket
        request.inbox.put(_ADMITTED)
        if request.max_tokens <= 0:
            self._finish(request)

    def _finish(self, request: _Request) -> None:
        if request.seq >= 0 and self._owner[request.seq] is request:
            self._owner[request.seq] = None
        if not request.finished:
            request.finished = True
            request.sampler.close()
            request.inbox.put(_END)

    def _step(self, ready: list[_Request]) -> None:
        """Decode one batch: a token of each sequence that is drawing, prompt chunks after them."""
        batch, room = self._batch, self._batch_size
        ready.sort(key=lambda r: len(r.todo))  # drawing sequences first: a long prompt waits its turn
        parts: list[tuple[_Request, int, list[int]]] = []  # request, its chunk's first index, chunk
        n = 0
        for request in ready:
            start = len(self._tokens[request.seq])
            chunk = request.todo[: room - n]
            if start < request.save_at:  # the kept prefix is saved alone, then the rest follows
                chunk = chunk[: request.save_at - start]
            if not chunk:
                break
            for i, token in enumerate(chunk):
                batch.token[n + i] = token
                batch.pos[n + i] = start + i
                batch.n_seq_id[n + i] = 1
                batch.seq_id[n + i][0] = request.seq
                batch.logits[n + i] = False
            parts.append((request, n, chunk))
            n += len(chunk)
            if len(chunk) == len(request.todo):  # its prompt is all in: the next token is drawn here
                batch.logits[n - 1] = True
        batch.n_tokens = n
        status = self._c.llama_decode(self.llm._ctx.ctx, batch)
        if status != 0:
            raise ModelError(f"llama.cpp could not decode a batch of {n} tokens (status {status})")
        self.steps += 1
        draws = 0
        for request, first, chunk in parts:
            self._tokens[request.seq].extend(chunk)
            del request.todo[: len(chunk)]
            if request.save_at and len(self._tokens[request.seq]) == request.save_at:
                assert self._saved is not None
                self._saved.save(request.seq)
                request.save_at = 0
            if not request.todo:
                draws += 1
                self._draw(request, first + len(chunk) - 1)
        self.peak = max(self.peak, draws)

    def _draw(self, request: _Request, index: int) -> None:
        token = request.sampler.sample(index)
        end = bool(self._c.llama_vocab_is_eog(self.llm._model.vocab, token))
        text = "" if end else request.decoder.decode(self.llm.detokenize([token]))
        request.drawn += 1
        request.inbox.put(Piece(token, text, end))
        if end or request.drawn >= request.max_tokens:
            with self._cond:
                self._finish(request)
        else:
            request.todo = [token]


def sequence_context(llm: Any, sequences: int, context_size: int) -> Any:
    """Replace `llm`'s context by one of `sequences` sequences, each in a KV stream of its own of
    `context_size` cells (a whole context each; a token attends only to its own sequence's cells)."""
    import llama_cpp
    from llama_cpp import _internals

    params = type(llm.context_params).from_buffer_copy(llm.context_params)
    params.n_seq_max = sequences
    params.kv_unified = False
    params.n_ctx = sequences * context_size
    llm._ctx.close()  # its KV cache is freed before the larger one is allocated
    context = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
    llm._stack.enter_context(contextlib.closing(context))
    llm._ctx, llm.context_params = context, params
    return llama_cpp.llama_n_seq_max(context.ctx)
