"""The disk cache of `web_search` and `read_page`: JSON values in files, each with a time-to-live.

It does not lock, evict or bound its size: entries are small, and an expired one is overwritten
the next time its key is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """`$QWQ_CACHE_DIR`, else `$XDG_CACHE_HOME/qwq-agent`, else `~/.cache/qwq-agent`."""
    if configured := os.environ.get("QWQ_CACHE_DIR"):
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qwq-agent"


class DiskCache:
    """JSON values in files under a directory, each valid for `ttl` seconds after it was stored.

    A cache is an optimisation: a missing, corrupt or unwritable entry is a miss, never an error.
    `ttl <= 0` turns it off.
    """

    def __init__(
        self, directory: Path | None = None, *, ttl: float = 24 * 3600, now: Callable[[], float] = time.time
    ) -> None:
        self._directory = directory
        self.ttl = ttl
        self._now = now

    @property
    def directory(self) -> Path:
        # Read the environment at first use, not at import, so a program can set it after importing.
        if self._directory is None:
            self._directory = default_cache_dir()
        return self._directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def get(self, key: str) -> Any:
        """The value stored under `key` if it is younger than the TTL, else None."""
        if self.ttl <= 0:
            return None
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            fresh = entry["key"] == key and 0 <= self._now() - entry["saved"] < self.ttl
            return entry["value"] if fresh else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, value: Any) -> None:
        """Store `value` (JSON-serialisable) under `key`."""
        if self.ttl <= 0:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_text(json.dumps({"key": key, "saved": self._now(), "value": value}), encoding="utf-8")
            partial.replace(path)  # atomic: a reader sees the old entry or the new one, never half
        except OSError:
            pass
