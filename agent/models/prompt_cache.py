"""Saved KV states of prompt prefixes on disk: `PromptCache`, for warm starts.

A state is keyed by the model file (path, size, modification time), the KV cache's data type and
the exact prefix tokens; its file holds a header with those tokens and a SHA-256 of the state
bytes, so a file that is truncated, corrupted or written for other tokens is refused (with a
warning) rather than trusted. The directory is bounded: the least recently used files go first.

This module only stores and checks bytes; it does not know llama.cpp (see
`agent.models.llama_cpp`, which gets and sets the states) nor what a preamble is.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path

from tools.web_cache import default_cache_dir

MAGIC = b"QWQKV1\n"
SUFFIX = ".kvstate"
DEFAULT_MAX_BYTES = 2 * 1024**3
"""The directory's bound: a few preambles of a 32B model (hundreds of MB each), many of a small one."""


def default_prompt_cache_dir() -> Path:
    """`kv/` in the cache directory (`$QWQ_CACHE_DIR`, else `$XDG_CACHE_HOME/qwq-agent`, ...)."""
    return default_cache_dir() / "kv"


def _token_bytes(tokens: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(tokens)}i", *tokens)


class PromptCache:
    """KV states of prompt prefixes, one file each, under `directory`, at most `max_bytes` in all."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def path(self, model_key: str, tokens: Sequence[int]) -> Path:
        """Where the state of `tokens` on the model `model_key` lives."""
        digest = hashlib.sha256(model_key.encode() + b"\0" + _token_bytes(tokens)).hexdigest()
        return self.directory / f"{digest[:40]}{SUFFIX}"

    def load(self, model_key: str, tokens: Sequence[int]) -> memoryview | None:
        """The saved state of exactly `tokens`, or None (missing; or refused with a warning)."""
        path = self.path(model_key, tokens)
        try:
            with open(path, "rb") as file:
                blob = bytearray(os.fstat(file.fileno()).st_size)
                read = file.readinto(blob)
        except OSError:
            return None
        state = self._check(memoryview(blob)[:read], model_key, tokens)
        if state is None:
            warnings.warn(f"ignoring the saved prompt state {path}: it is corrupt or not for this prompt", stacklevel=2)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return state

    @staticmethod
    def _check(blob: memoryview, model_key: str, tokens: Sequence[int]) -> memoryview | None:
        # Views, not copies: a 32B model's preamble state is hundreds of MB.
        want_key, want_tokens = model_key.encode(), _token_bytes(tokens)
        head = len(MAGIC) + 4 + len(want_key) + 4 + len(want_tokens) + 32
        if len(blob) < head or blob[: len(MAGIC)] != MAGIC:
            return None
        at = len(MAGIC)
        (key_length,) = struct.unpack_from("<I", blob, at)
        at += 4
        if blob[at : at + key_length] != want_key:
            return None
        at += key_length
        (count,) = struct.unpack_from("<I", blob, at)
        at += 4
        if count != len(tokens) or blob[at : at + 4 * count] != want_tokens:
            return None
        at += 4 * count
        digest, state = blob[at : at + 32], blob[at + 32 :]
        if not len(state) or hashlib.sha256(state).digest() != digest:
            return None
        return state

    def save(self, model_key: str, tokens: Sequence[int], state: memoryview) -> None:
        """Store the state of `tokens`, then trim the directory; a failure to write only warns.

        A state larger than the whole bound is not stored.
        """
        if len(state) > self.max_bytes:
            return
        key, token_bytes = model_key.encode(), _token_bytes(tokens)
        header = MAGIC + struct.pack("<I", len(key)) + key + struct.pack("<I", len(tokens)) + token_bytes
        path = self.path(model_key, tokens)
        partial = path.with_suffix(f".{os.getpid()}.part")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                out.write(header + hashlib.sha256(state).digest())
                out.write(state)
            os.replace(partial, path)  # readers never see half a file
        except OSError as exc:
            warnings.warn(f"could not save the prompt state in {self.directory}: {exc}", stacklevel=2)
            with contextlib.suppress(OSError):
                partial.unlink()
            return
        self.trim(keep=path)

    def trim(self, keep: Path | None = None) -> None:
        """Remove the least recently used files until the directory fits `max_bytes`."""
        entries = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                info = path.stat()
                entries.append((info.st_mtime_ns, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
