"""A GGUF model run in-process by llama.cpp (llama-cpp-python): `LlamaCppModel`.

It reports how much of each prompt llama.cpp reused from its KV cache (a longest-prefix match
against what it evaluated last) and how much it had to evaluate, keeps the KV state of a few
interleaved conversations, and serializes its callers (llama.cpp contexts are not thread-safe).
The preamble every episode opens with is loaded from its saved KV state when there is one (see
`agent.models.prompt_cache`), and a grammar judges only the token the sampler drew
(`agent.models.lazy_grammar`); with `sequences`, several episodes decode together
(`agent.models.batching`).

This module does not find model files (see `agent.models.sources`) and does not know about chat
formats, tools or the agent loop.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import itertools
import os
import threading
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent.models.batching import Batcher, sequence_context
from agent.models.families import family, family_sampling, thinks
from agent.models.lazy_grammar import LazyGrammarSampler
from agent.models.prompt_cache import PromptCache, default_prompt_cache_dir
from agent.models.protocol import QUOTE, ContextSeed, Generation, ModelError, Piece, Sampling, common_prefix
from agent.models.sources import check_gguf, resolve_model_path

KV_CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}
"""KV cache data types by name (ggml type ids); quantized V needs flash attention."""

MIN_SESSION_TOKENS = 32
"""A cached conversation at least this long is kept when another one takes the model."""

FIRST_CELLS = 2048
"""KV cells a model of one sequence starts with (the preamble and a first turn fit); it doubles
them as a transcript needs, up to `context_size`. llama.cpp clears the whole cache when it makes
it, so every cell costs memory from the start: 23 KB each for the embedded model in f16, 256 KB
for QwQ-32B (8 GiB at 32k, for a one-line question)."""


@dataclass(frozen=True)
class _SessionState:
    tokens: list[int]
    data: bytes


def _replayed(shared: int, prompt_length: int) -> int:
    # As Llama.generate does: a fully cached prompt replays its last token to refresh the logits.
    return shared - 1 if shared == prompt_length and shared > 0 else shared


class LlamaCppModel:
    """A GGUF model run in-process by llama.cpp (CPU, or GPU with `n_gpu_layers`)."""

    parallel = False
    """Whether episodes run at once (with `sequences` > 1); otherwise callers take turns."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        context_size: int = 8192,
        n_gpu_layers: int = 0,
        threads: int | None = None,
        seed: int | None = None,
        sampling: Sampling | None = None,
        thinking: bool | None = None,
        session_states: int = 2,
        prompt_cache: PromptCache | str | os.PathLike[str] | None = "default",
        kv_cache: str = "f16",
        sequences: int = 1,
    ) -> None:
        """Load a model.

        Args:
            path: A GGUF path, a hub file (`Qwen/QwQ-32B-GGUF`, `Qwen/QwQ-32B-GGUF:Q8_0`,
                `owner/repo/file.gguf`; from ModelScope with `modelscope:` before them), or None for
                the embedded SmolLM2-135M-Instruct.
            context_size: Context length in tokens. A model of one sequence allocates its KV
                cache as the transcript grows (`FIRST_CELLS` first, doubled when full, up to
                this), so memory follows what episodes use; several sequences take it all.
            n_gpu_layers: Layers to offload to the GPU; -1 offloads all.
            threads: CPU threads; defaults to every core this process may use.
            seed: Sampling seed, for reproducible runs; random when None.
            sampling: Sampling settings; QwQ's recommendation for reasoning models, a cooler one
                for instruct models.
            thinking: Whether the model reasons in `<think>`; read from its chat template if None.
            session_states: KV states of other conversations kept in memory, so that sessions
                interleaved on this model need not re-read their transcripts.
            prompt_cache: Where the KV state of the agent's preamble is saved for warm starts: a
                `PromptCache`, a directory, "default" (`kv/` in the cache directory) or None (off).
            kv_cache: The KV cache's data type: "f16", or "q8_0"/"q4_0" (about half/a quarter
                of its memory, with flash attention). f16 stays the default because llama.cpp's
                CPU flash attention, which a quantized V cache needs, is slower here: the embedded
                model on 2 busy cores, tokens/s against f16, generation / prompt: q8_0 0.80 / 0.84
                at 300 tokens of context and 0.50 / 0.79 at 1,100; q4_0 0.86 / 0.54 at 300. A full
                cache of 8192 cells takes 180 MiB in f16, 96 in q8_0, 51 in q4_0.
            sequences: Generations decoded together in shared batches (see
                `agent.models.batching`), for episodes in several threads (`eval --workers`,
                `samples`); each sequence may fill a whole `context_size`, so the KV cache
                takes `sequences` times the memory.
        """
        model_path = resolve_model_path(path)
        check_gguf(model_path)
        from llama_cpp import LLAMA_DEFAULT_SEED, Llama
        from llama_cpp import __version__ as binding_version

        if sequences < 1:
            raise ValueError(f"sequences must be at least 1, not {sequences}")
        if kv_cache not in KV_CACHE_TYPES:
            raise ValueError(f"kv_cache must be one of {', '.join(KV_CACHE_TYPES)}, not {kv_cache!r}")
        kv_type = KV_CACHE_TYPES[kv_cache]
        try:
            self.llm = Llama(
                model_path=str(model_path),
                n_ctx=context_size if sequences > 1 else min(context_size, FIRST_CELLS),
                type_k=kv_type,
                type_v=kv_type,
                flash_attn=kv_cache != "f16",
                n_gpu_layers=n_gpu_layers,
                n_threads=threads or len(os.sched_getaffinity(0)),
                seed=LLAMA_DEFAULT_SEED if seed is None else seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"could not load {model_path}: llama.cpp rejected it ({exc}); the file may be "
                "truncated or corrupt, or need a newer llama-cpp-python: download it again"
            ) from None
        self.context_size = max(context_size, self.llm.n_ctx())
        self._batcher: Batcher | None = None
        if sequences > 1:
            sequence_context(self.llm, sequences, self.context_size)
            self._batcher = Batcher(self.llm, sequences, lambda: self._cancelled, saved=self)
            self.parallel = True
        self.sequences = sequences
        self.chat_template = self.llm.metadata.get("tokenizer.chat_template", "")
        bos = self.llm.token_bos()
        self.bos_token = self.llm.detokenize([bos], special=True).decode(errors="replace") if bos >= 0 else ""
        """The text of its begin-of-sequence token, for templates that write `bos_token`."""
        self.family = family(self.chat_template, self.llm.metadata.get("general.architecture", ""))
        """Its chat format's family: from its template, or its architecture when it carries none."""
        self.thinking = (bool(self.chat_template) and thinks(self.family)) if thinking is None else thinking
        self.sampling = sampling or family_sampling(self.family, self.thinking)
        self.name = self.llm.metadata.get("general.name") or model_path.stem
        self.path = model_path
        self.size_bytes = model_path.stat().st_size
        self.seed = seed
        """The sampling seed; None when each generation draws its own."""
        if seed is not None:
            self.llm.set_seed(seed)  # Llama(seed=0) would read 0 as "random"
        self.session_states = session_states
        self._sessions: list[_SessionState] = []
        if prompt_cache == "default":
            prompt_cache = PromptCache(default_prompt_cache_dir())
        elif prompt_cache is not None and not isinstance(prompt_cache, PromptCache):
            prompt_cache = PromptCache(prompt_cache)
        self.prompt_cache: PromptCache | None = prompt_cache
        """Saved preamble states (None: every start evaluates its preamble)."""
        self._preamble: list[int] = []
        info = model_path.stat()
        # llama.cpp refuses a sequence's state saved from a context of another layout (one KV
        # stream, or one per sequence), so the layout is part of the key.
        layout = f"kv{kv_type}" if sequences == 1 else f"kv{kv_type}x{sequences}"
        self._cache_key = f"{model_path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{binding_version}|{layout}"
        self._seeds = ContextSeed(None)
        """A seed `reseed` gave; None: the one the model was loaded with."""
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._issued = 0
        self._cancelled = 0

    def cancel(self) -> None:
        """End every generation asked for so far within a token; later ones run as usual.

        Safe to call from a signal handler: it only moves a counter, and the token loop (which may
        run in another thread) reads it before each token.
        """
        self._cancelled = self._issued

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Tokens of `text`, never with a BOS: ChatML models start with `<|im_start|>`."""
        return self.llm.tokenize(text.encode(), add_bos=False, special=special)

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Continue `prompt`; llama.cpp evaluates only what differs from its cached prefix.

        The model is locked from the first piece to the last (llama.cpp contexts are not
        thread-safe), and the prompt's own session KV state is brought back if another session
        displaced it; `reused` and `evaluated` are filled in when generation starts.
        """
        prompt = list(prompt)
        max_tokens = min(max_tokens, self.context_size - len(prompt))
        generation = Generation(0, 0, iter(()))
        quote = QUOTE.get()  # here, in the caller's context: the pieces are drawn wherever it iterates
        self._issued = ticket = next(self._tickets)
        if self._batcher is not None:
            sampler = LazyGrammarSampler(
                self.llm, self.sampling, grammar, self._seeds.get(), quote
            )  # a bad grammar raises here
            generation.pieces = self._batcher.stream(prompt, max_tokens, sampler, ticket, weakref.proxy(generation))
            return generation
        # A weak reference: with a strong one, generation and generator form a cycle, and a caller
        # that breaks out of `for piece in model.generate(...)` without close() leaves the
        # generator suspended inside the lock until the cyclic GC runs: the next call deadlocks.
        generation.pieces = self._pieces(prompt, max_tokens, grammar, quote, weakref.proxy(generation), ticket)
        return generation

    def _pieces(
        self, prompt: list[int], max_tokens: int, grammar: str | None, quote: str, report: Generation, ticket: int
    ) -> Iterator[Piece]:
        from llama_cpp import llama_vocab_is_eog

        with self._lock:
            if ticket <= self._cancelled:
                return
            self._room(len(prompt) + 1)
            self._bring_back_session(prompt)
            warming, loaded = self._warm_start(prompt)
            reused = _replayed(common_prefix(self._cached(), prompt), len(prompt))
            with contextlib.suppress(ReferenceError):  # nobody kept the Generation to read it
                report.reused, report.evaluated = reused - warming, len(prompt) - reused + warming
                report.saved_cache = loaded
                report.prompt_known()
            if max_tokens <= 0:
                return
            llm = self.llm
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            vocab = llm._model.vocab
            with contextlib.closing(
                LazyGrammarSampler(llm, self.sampling, grammar, self._seeds.get(), quote)
            ) as sampler:
                if reused == 0:
                    llm.reset()
                llm.n_tokens = reused
                llm.eval(prompt[reused:])  # drops whatever the cache held after the shared prefix
                for count in itertools.count(1):
                    if ticket <= self._cancelled:
                        return
                    token = sampler.sample()
                    end = bool(llama_vocab_is_eog(vocab, token))
                    text = "" if end else decoder.decode(llm.detokenize([token]))
                    yield Piece(token, text, end)
                    if end or count >= max_tokens:
                        return
                    self._room(llm.n_tokens + 1)
                    llm.eval([token])

    def preamble(self, tokens: Sequence[int]) -> None:
        """Say which prompt prefix starts every episode (system prompt, tools, examples).

        A prompt that opens with it starts from its saved KV state (`prompt_cache`) instead of
        evaluating it; the first that finds no saved state evaluates the preamble alone, then
        saves it for the next process.
        """
        self._preamble = list(tokens)

    def _warm_start(self, prompt: list[int]) -> tuple[int, bool]:
        """Bring the preamble into the cache, from its saved state if any.

        Returns how many tokens it evaluated, and whether it loaded a saved state.
        """
        preamble, cache = self._preamble, self.prompt_cache
        if cache is None or len(preamble) < MIN_SESSION_TOKENS or prompt[: len(preamble)] != preamble:
            return 0, False
        shared = common_prefix(self._cached(), preamble)
        if shared == len(preamble):
            return 0, False
        import llama_cpp

        llm = self.llm
        state = cache.load(self._cache_key, preamble)
        if state is not None:
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            data = (ctypes.c_uint8 * len(state)).from_buffer(state)
            if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, data, len(state), 0):
                llm.input_ids[: len(preamble)] = preamble
                llm.n_tokens = len(preamble)
                return 0, True
            warnings.warn("ignoring a saved prompt state that llama.cpp refused", stacklevel=3)
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            shared = 0
        # Evaluated alone, so that a warm start and a cold one leave bit-identical states.
        if shared == 0:
            llm.reset()
        llm.n_tokens = shared
        llm.eval(preamble[shared:])
        cache.save(self._cache_key, preamble, self._state())
        return len(preamble) - shared, False

    def _state(self, seq: int = 0) -> memoryview:
        """The KV state of sequence `seq`, in a buffer of its own."""
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, seq)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, seq)
        return memoryview(buffer).cast("B")[:written]

    # The saved preamble for a model decoding several sequences (see `agent.models.batching`).

    def saved_length(self, prompt: Sequence[int]) -> int:
        """How long the preamble is that `prompt` opens with and the prompt cache may hold (0: none)."""
        preamble = self._preamble
        if self.prompt_cache is None or len(preamble) < MIN_SESSION_TOKENS or prompt[: len(preamble)] != preamble:
            return 0
        return len(preamble)

    def load_saved(self, seq: int) -> bool:
        """Put the saved preamble state into sequence `seq` (cleared first); False: there is none."""
        import llama_cpp

        assert self.prompt_cache is not None
        state = self.prompt_cache.load(self._cache_key, self._preamble)
        self.llm._ctx.kv_cache_seq_rm(seq, -1, -1)
        if state is None:
            return False
        data = (ctypes.c_uint8 * len(state)).from_buffer(state)
        if llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, data, len(state), seq):
            return True
        warnings.warn("ignoring a saved prompt state that llama.cpp refused", stacklevel=2)
        self.llm._ctx.kv_cache_seq_rm(seq, -1, -1)
        return False

    def save(self, seq: int) -> None:
        """Save sequence `seq`, which holds exactly the preamble, for the next process."""
        assert self.prompt_cache is not None
        self.prompt_cache.save(self._cache_key, self._preamble, self._state(seq))

    def forget(self) -> None:
        """Drop every evaluated token and kept session, as a fresh process starts (for `bench`)."""
        with self._lock:
            self._sessions = []
            if self._batcher is not None:
                self._batcher.forget()
            self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            self.llm.reset()

    def _cached(self) -> list[int]:
        return self.llm.input_ids[: self.llm.n_tokens].tolist()

    def _bring_back_session(self, prompt: list[int]) -> None:
        """Keep the KV state of a conversation this prompt would overwrite; restore a better one.

        Two sessions interleaved on one model would otherwise re-evaluate each other's whole
        transcript at every switch. States are copied only at a switch, never on a plain step.
        """
        import llama_cpp

        cached = self._cached()
        shared = common_prefix(cached, prompt)
        best = max(self._sessions, key=lambda s: common_prefix(s.tokens, prompt), default=None)
        if best is not None and common_prefix(best.tokens, prompt) <= shared:
            best = None
        if best is not None:
            self._sessions = [s for s in self._sessions if s is not best]
        if len(cached) - shared >= MIN_SESSION_TOKENS and self.session_states:
            self._sessions = [*self._sessions, _SessionState(cached, bytes(self._state()))][-self.session_states :]
        if best is not None:
            self._room(len(best.tokens) + 1)
            data = (ctypes.c_uint8 * len(best.data)).from_buffer_copy(best.data)
            if llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, data, len(best.data), 0):
                self.llm.input_ids[: len(best.tokens)] = best.tokens
                self.llm.n_tokens = len(best.tokens)

    def _room(self, cells: int) -> None:
        """Grow the KV cache of this one-sequence model to hold `cells` (doubling, up to
        `context_size`): a new context, into which the cached tokens' state moves."""
        import llama_cpp
        import numpy as np
        from llama_cpp import _internals

        llm = self.llm
        size = llm.n_ctx()
        if cells <= size or size >= self.context_size:
            return
        while size < cells:
            size *= 2
        kept, length = bytes(self._state()), llm.n_tokens
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx = min(size, self.context_size)
        llm._ctx.close()  # its cache is freed before the larger one is allocated
        context = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        llm._stack.enter_context(contextlib.closing(context))
        llm._ctx, llm.context_params, llm._n_ctx = context, params, context.n_ctx()
        ids = np.zeros(llm._n_ctx, dtype=np.intc)
        ids[:length] = llm.input_ids[:length]
        llm.input_ids = ids
        data = (ctypes.c_uint8 * len(kept)).from_buffer_copy(kept)
        if length and not llama_cpp.llama_state_seq_set_data(context.ctx, data, len(kept), 0):
            raise ModelError("llama.cpp refused the KV state it had written, moving it to a larger cache")

    def reseed(self, seed: int) -> None:
        """Sample with another seed from now on (independent samples of one question).

        The seed holds for this thread's context above all (`ContextSeed`), so that samples
        running at once in threads of their own each keep theirs.
        """
        self.llm.set_seed(seed)
        self._seeds.set(seed)

    def describe(self) -> dict[str, Any]:
        """Facts about the loaded model, for `doctor` and results."""
        metadata = self.llm.metadata
        trained = next((v for k, v in metadata.items() if k.endswith(".context_length")), None)
        return {
            "name": self.name,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "context_size": self.context_size,
            "kv_cells": self.llm.n_ctx(),
            "sequences": self.sequences,
            "trained_context": None if trained is None else int(trained),
            "thinking": self.thinking,
            "chat_format": self.family,
            "sampling": asdict(self.sampling),
        }
