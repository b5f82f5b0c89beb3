"""Output files written whole or not at all: `write_atomically(path, text)`.

The text goes to a temporary file beside the target, which is flushed to disk and then renamed
over it, so a full disk or a Ctrl-C leaves the old file (or none), never a truncated one. The
target's directory must exist: output paths never create directories.

This module does not append (JSONL outputs append whole lines; see `agent.workloads.batch`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output file cannot be written; the message names it and says why, in one line."""


def check_writable(path: str | os.PathLike[str]) -> Path:
    """`path` as a `Path`, if a file can be created there; else `OutputError`."""
    target = Path(path).expanduser()
    parent = target.parent
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a directory")
    if not parent.is_dir():
        raise OutputError(f"cannot write {target}: no directory {parent} (output paths never create one)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: {parent} is not writable")
    return target


def write_atomically(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Replace `path` with `data` (text is UTF-8) in one rename; `OutputError` if it cannot."""
    target = check_writable(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target
