"""Results files that survive any kill: JSON lines appended whole, read back whole.

`Appender.write(record)` puts one line out in a single `write` on an `O_APPEND` file, from any
number of threads, so lines never interleave; `records(path)` first cuts off a torn last line (a
kill mid-write, a full disk), so the file is always whole lines, then reads them. Batches and
evaluations both resume from such a file. This module knows nothing of what the lines mean.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class Appender:
    """Appends JSON lines, each in one `write` call, from any number of threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one line."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self.lock:
            view = memoryview(data)
            while view:  # a regular file takes it all at once; the loop covers the exotic rest
                view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


def records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON objects of a results file, after cutting off a torn last line; other lines are skipped."""
    file = Path(path)
    if not file.exists():
        return []
    data = file.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) < len(data):  # a write cut short: drop the fragment so the file stays whole lines
        with open(file, "r+b") as f:
            f.truncate(len(whole))
    found = []
    for raw in whole.splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            continue  # not ours: leave it
        if isinstance(record, dict):
            found.append(record)
    return found
