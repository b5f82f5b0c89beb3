"""Which GGUF files of a model repository to fetch, and one way to fetch them from any model hub.

A hub spec names a repository and optionally a quantization or a file: `owner/repo` (its Q4_K_M
GGUF), `owner/repo:Q8_0`, `owner/repo/file.gguf`. `choose` picks the files from a listing of the
repository: the GGUF of the quantization (matched as a whole token, so Q4_K is not Q4_K_M, and
never a vision projector `mmproj-*`), or the named file; a split GGUF (`-00001-of-00003.gguf`)
comes with all of its parts, first part first, and an incomplete split or a choice between
several files is a one-line `ModelError` that says what to write instead.

`fetch` resolves a spec through a `Hub` (the Hugging Face hub, ModelScope): from files already
in the hub's cache, without the network; else after one quick probe of the hub, so that an
offline machine fails in seconds rather than after the client's retries, from the listing and
the downloads. Every failure of the hub becomes one line: what failed, and what to do.

This module knows no hub's client library (`hub_huggingface`, `hub_modelscope` wrap them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from agent.models.protocol import ModelError

DEFAULT_QUANT = "Q4_K_M"
"""The quantization of a spec that names none: under a third of full precision, little loss."""
PROBE_SECONDS = 10.0
"""How long the reachability probe waits before the hub counts as unreachable."""

_NAME = r"[\w.-]+"
_SPEC = re.compile(rf"(?P<repo>{_NAME}/{_NAME})(?::(?P<quant>{_NAME})|/(?P<file>(?:{_NAME}/)*{_NAME}\.gguf))?")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
# A quantization as GGUF file names spell it: q4_k_m, iq4_xs, q8_0, bf16, f16 (not inside a word).
_QUANT = re.compile(r"(?<![a-z0-9])(i?q\d+(?:_[a-z0-9]+)*|bf16|f16|f32)(?![a-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class HubSpec:
    """A model named on a hub."""

    repo: str
    """The repository, `owner/name`."""
    quant: str | None = None
    """The quantization asked for (`Q8_0`), or None for `DEFAULT_QUANT` (unless `file` is given)."""
    file: str | None = None
    """A file of the repository, by its path there; None to choose by quantization."""


class Hub(Protocol):
    """What `fetch` needs of a model hub."""

    name: str
    """The hub in messages: "the Hugging Face hub", "ModelScope"."""
    fix: str
    """What to do when the hub cannot be reached, as the end of a sentence."""

    def cached_files(self, repo: str) -> dict[str, Path]:
        """The repository's GGUF files in the local cache, by their path in the repository; no network."""
        ...

    def probe(self) -> None:
        """One quick request to the hub (at most `PROBE_SECONDS`); raises when it is unreachable."""
        ...

    def list_files(self, repo: str) -> list[str]:
        """Every file of the repository, by its path there."""
        ...

    def download(self, repo: str, names: Sequence[str]) -> list[Path]:
        """Fetch files into the hub's cache, with progress; their local paths, in order."""
        ...


def parse_spec(text: str) -> HubSpec:
    """The `HubSpec` of `owner/repo`, `owner/repo:QUANT` or `owner/repo/path/file.gguf`."""
    match = _SPEC.fullmatch(text)
    if match is None or match["repo"].endswith(".gguf"):
        raise ModelError(f"not a model on a hub: {text!r} (write OWNER/REPO, OWNER/REPO:QUANT or OWNER/REPO/FILE.gguf)")
    return HubSpec(match["repo"], match["quant"], match["file"])


def quant_of(name: str) -> str | None:
    """The quantization a GGUF file name spells (`Q4_K_M` of `qwq-32b-q4_k_m.gguf`), upper-case."""
    found = _QUANT.findall(_SPLIT.sub("", name).removesuffix(".gguf"))
    return found[-1].upper() if found else None


def choose(names: Sequence[str], spec: HubSpec) -> list[str]:
    """The files of `spec` among a repository's `names`: one GGUF, or every part of a split one."""
    ggufs = sorted(n for n in names if n.lower().endswith(".gguf"))
    if spec.file is not None:
        if spec.file not in names:
            listed = ", ".join(ggufs[:8]) + (", ..." if len(ggufs) > 8 else "")
            raise ModelError(f"{spec.repo} has no file {spec.file}; its GGUF files: {listed or 'none'}")
        return _parts(spec.file, ggufs, spec.repo)
    wanted = (spec.quant or DEFAULT_QUANT).upper()
    weights = [n for n in ggufs if not PurePosixPath(n).name.lower().startswith("mmproj")]
    matching = [n for n in weights if quant_of(n) == wanted]
    if not matching:
        quants = sorted({q for n in weights if (q := quant_of(n))})
        raise ModelError(f"{spec.repo} has no {wanted} GGUF; it has: {', '.join(quants) or 'none'}")
    models = sorted({_SPLIT.sub(".gguf", n) for n in matching})
    if len(models) > 1:
        raise ModelError(
            f"{spec.repo} has several {wanted} GGUFs ({', '.join(models[:4])}); name one as {spec.repo}/FILE.gguf"
        )
    return _parts(matching[0], ggufs, spec.repo)


def _parts(name: str, ggufs: Sequence[str], repo: str) -> list[str]:
    """`name` alone, or all parts of the split GGUF it belongs to, after checking none is missing."""
    split = _SPLIT.search(name)
    if split is None:
        return [name]
    total = int(split.group(2))
    stem = name[: split.start()]
    parts = [f"{stem}-{k:05d}-of-{total:05d}.gguf" for k in range(1, total + 1)]
    missing = [p for p in parts if p not in ggufs]
    if missing:
        raise ModelError(f"{repo}: {PurePosixPath(stem).name} is split in {total} parts, {len(missing)} missing")
    return parts


def gguf_files(root: Path) -> dict[str, Path]:
    """The GGUF files under a local snapshot directory, by their path relative to it."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.gguf")) if p.is_file()}


def cached(text: str, hub: Hub) -> Path | None:
    """The local path of the spec `text` if all its files are in the hub's cache; never downloads."""
    spec = parse_spec(text)
    files = hub.cached_files(spec.repo)
    try:
        return files[choose(list(files), spec)[0]]
    except ModelError:
        return None


def fetch(text: str, hub: Hub, *, label: str | None = None) -> Path:
    """The local path of the spec `text` (its first part, if split), downloaded when not cached.

    `label` is how the spec is named in errors (default: `text`). Raises `ModelError`, one line:
    the repository lacks what was asked for, or the hub could not be reached or failed, and what
    to do then.
    """
    label = label or text
    local = cached(text, hub)
    if local is not None:
        return local
    spec = parse_spec(text)
    try:
        # One plain request first: hub clients retry a dead connection for many seconds.
        hub.probe()
        names = hub.list_files(spec.repo)
        return hub.download(spec.repo, choose(names, spec))[0]
    except ModelError:
        raise
    except Exception as exc:  # each hub client raises its own family, per transport and version
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot download {label} from {hub.name} ({reason}); {hub.fix}") from None
