"""A GGUF model run in-process by llama.cpp (llama-cpp-python): `LlamaCppModel`.

It reports how much of each prompt llama.cpp reused from its KV cache (a longest-prefix match
against what it evaluated last) and how much it had to evaluate, keeps the KV state of a few
interleaved conversations, and serializes its callers (llama.cpp contexts are not thread-safe).

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
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent.models.families import family, family_sampling, thinks
from agent.models.protocol import Generation, ModelError, Piece, Sampling, common_prefix
from agent.models.sources import check_gguf, resolve_model_path

MIN_SESSION_TOKENS = 32
"""A cached conversation at least this long is kept when another one takes the model."""


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
    """One context serves one episode at a time: callers take turns."""

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
    ) -> None:
        """Load a model.

        Args:
            path: A GGUF path, a hub file (`Qwen/QwQ-32B-GGUF`, `Qwen/QwQ-32B-GGUF:Q8_0`,
                `owner/repo/file.gguf`; from ModelScope with `modelscope:` before them), or None for
                the embedded SmolLM2-135M-Instruct.
            context_size: Context length in tokens (KV cache memory grows with it).
            n_gpu_layers: Layers to offload to the GPU; -1 offloads all.
            threads: CPU threads; defaults to every core this process may use.
            seed: Sampling seed, for reproducible runs; random when None.
            sampling: Sampling settings; QwQ's recommendation for reasoning models, a cooler one
                for instruct models.
            thinking: Whether the model reasons in `<think>`; read from its chat template if None.
            session_states: KV states of other conversations kept in memory, so that sessions
                interleaved on this model need not re-read their transcripts.
        """
        model_path = resolve_model_path(path)
        check_gguf(model_path)
        from llama_cpp import LLAMA_DEFAULT_SEED, Llama

        try:
            self.llm = Llama(
                model_path=str(model_path),
                n_ctx=context_size,
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
        self.context_size = self.llm.n_ctx()
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
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._issued = 0
        self._cancelled = 0

    def cancel(self) -> None:
        """End every generation asked for so far within a token; later ones run as usual.

        Safe to call from a signal handler: it only moves a counter, and the token loop (which may
        run in a LangGraph worker thread) reads it before each token.
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
        self._issued = ticket = next(self._tickets)
        # A weak reference: with a strong one, generation and generator form a cycle, and a caller
        # that breaks out of `for piece in model.generate(...)` without close() leaves the
        # generator suspended inside the lock until the cyclic GC runs: the next call deadlocks.
        generation.pieces = self._pieces(prompt, max_tokens, grammar, weakref.proxy(generation), ticket)
        return generation

    def _pieces(
        self, prompt: list[int], max_tokens: int, grammar: str | None, report: Generation, ticket: int
    ) -> Iterator[Piece]:
        from llama_cpp import LlamaGrammar, llama_vocab_is_eog

        with self._lock:
            if ticket <= self._cancelled:
                return
            self._bring_back_session(prompt)
            reused = _replayed(common_prefix(self._cached(), prompt), len(prompt))
            with contextlib.suppress(ReferenceError):  # nobody kept the Generation to read it
                report.reused, report.evaluated = reused, len(prompt) - reused
                report.prompt_known()  # a warm start sets report.saved_cache before this
            if max_tokens <= 0:
                return
            s = self.sampling
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            vocab = self.llm._model.vocab
            tokens = self.llm.generate(
                prompt,
                temp=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k,
                min_p=s.min_p,
                repeat_penalty=s.repeat_penalty,
                grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
            )
            for count, token in enumerate(tokens, start=1):
                if ticket <= self._cancelled:
                    return
                end = bool(llama_vocab_is_eog(vocab, token))
                text = "" if end else decoder.decode(self.llm.detokenize([token]))
                yield Piece(token, text, end)
                if end or count >= max_tokens:
                    return

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
            ctx = self.llm._ctx.ctx
            size = llama_cpp.llama_state_seq_get_size(ctx, 0)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
            self._sessions = [*self._sessions, _SessionState(cached, bytes(buffer)[:written])][-self.session_states :]
        if best is not None:
            data = (ctypes.c_uint8 * len(best.data)).from_buffer_copy(best.data)
            if llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, data, len(best.data), 0):
                self.llm.input_ids[: len(best.tokens)] = best.tokens
                self.llm.n_tokens = len(best.tokens)

    def reseed(self, seed: int) -> None:
        """Sample with another seed from now on (independent samples of one question)."""
        self.llm.set_seed(seed)

    def describe(self) -> dict[str, Any]:
        """Facts about the loaded model, for `doctor` and results."""
        metadata = self.llm.metadata
        trained = next((v for k, v in metadata.items() if k.endswith(".context_length")), None)
        return {
            "name": self.name,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "context_size": self.context_size,
            "trained_context": None if trained is None else int(trained),
            "thinking": self.thinking,
            "chat_format": self.family,
            "sampling": asdict(self.sampling),
        }
