"""The Hugging Face hub as a `Hub` for `hub_files.fetch`: its cache, one probe, listings, downloads.

Files land in the Hugging Face cache (`HF_HOME`, `HF_HUB_CACHE`) with the client's progress bars
and are found there again offline; `HF_ENDPOINT` points at a mirror. The client library
(`huggingface_hub`) is imported only when a hub spec is resolved.

This module does not choose files (`hub_files.choose` does) or load them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.models.hub_files import PROBE_SECONDS, gguf_files


class HuggingFace:
    """The Hugging Face hub (or the mirror `HF_ENDPOINT` names)."""

    name = "the Hugging Face hub"
    fix = (
        "download the .gguf on a connected machine and pass --model /path/to/file.gguf, or set HF_ENDPOINT to a mirror"
    )

    def cached_files(self, repo: str) -> dict[str, Path]:
        """The GGUF files of the repository's cached snapshot (of its main branch); no network."""
        from huggingface_hub import snapshot_download

        try:
            root = Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # nothing cached (LocalEntryNotFoundError), or a cache it cannot read
            return {}
        return gguf_files(root)

    def probe(self) -> None:
        """One HEAD request to the hub's endpoint."""
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session

        get_session().head(constants.ENDPOINT, timeout=PROBE_SECONDS)

    def list_files(self, repo: str) -> list[str]:
        """Every file of the repository."""
        from huggingface_hub import list_repo_files

        return list(list_repo_files(repo))

    def download(self, repo: str, names: Sequence[str]) -> list[Path]:
        """Each file into the cache, with the client's progress bar."""
        from huggingface_hub import hf_hub_download

        return [Path(hf_hub_download(repo, name)) for name in names]
