"""ModelScope as a `Hub` for `hub_files.fetch`: its cache, one probe, listings, downloads.

ModelScope (modelscope.cn) hosts the Qwen models, QwQ-32B's GGUF files included, where the
Hugging Face hub is out of reach. The `modelscope` package (the `modelscope` extra) does the
work: `HubApi().get_model_files` lists a repository, `snapshot_download(allow_patterns=...,
progress_callbacks=[TqdmCallback])` fetches the chosen files with a progress bar into its cache
(`MODELSCOPE_CACHE`, default `~/.cache/modelscope`), and with `local_files_only=True` finds them
there again without the network. Everything is read at the `master` revision, so that a file
downloaded once is found again offline. `MODELSCOPE_ENDPOINT` (or the older `MODELSCOPE_DOMAIN`)
points at another site, such as https://www.modelscope.ai.

The package is imported only when a `modelscope:` spec is resolved; without it, the error says
how to install it. This module does not choose files (`hub_files.choose` does) or load them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from agent.models.hub_files import PROBE_SECONDS, gguf_files
from agent.models.protocol import ModelError

PREFIX = "modelscope:"
"""How a model spec names ModelScope: `modelscope:Qwen/QwQ-32B-GGUF[:QUANT]`."""
REVISION = "master"
"""The branch read: ModelScope's default, and the snapshot directory the cache files it under."""
DEFAULT_ENDPOINT = "https://modelscope.cn"
"""Where the package goes when no environment variable says otherwise."""
INTL_ENDPOINT = "https://www.modelscope.ai"
"""Where it goes first with `MODELSCOPE_PREFER_AI_SITE=true`."""
INSTALL = "pip install 'qwq-agent[modelscope]'"


def endpoint() -> str:
    """The site the package will use: `MODELSCOPE_ENDPOINT`, else `MODELSCOPE_DOMAIN`, else modelscope.cn
    (modelscope.ai with `MODELSCOPE_PREFER_AI_SITE=true`), as the package itself decides."""
    value = os.environ.get("MODELSCOPE_ENDPOINT", "").strip() or os.environ.get("MODELSCOPE_DOMAIN", "").strip()
    if not value:
        prefer_ai = os.environ.get("MODELSCOPE_PREFER_AI_SITE", "").strip().lower() in ("1", "true", "yes")
        return INTL_ENDPOINT if prefer_ai else DEFAULT_ENDPOINT
    return (value if value.lower().startswith(("http://", "https://")) else f"https://{value}").rstrip("/")


class ModelScope:
    """ModelScope, through the `modelscope` package."""

    name = "ModelScope"
    fix = (
        "download the .gguf on a connected machine and pass --model /path/to/file.gguf, "
        "or set MODELSCOPE_ENDPOINT to a site you can reach"
    )

    def __init__(self) -> None:
        try:
            import modelscope  # noqa: F401  (only to know it is there)
        except ImportError:
            raise ModelError(f"modelscope: models need the modelscope package: {INSTALL}") from None

    def cached_files(self, repo: str) -> dict[str, Path]:
        """The GGUF files of the repository's cached snapshot; no network."""
        from modelscope.hub.snapshot_download import snapshot_download

        try:
            root = Path(snapshot_download(repo, revision=REVISION, local_files_only=True))
        except Exception:  # nothing cached (CacheNotFound), or a cache it cannot read
            return {}
        return gguf_files(root)

    def probe(self) -> None:
        """One HEAD request to the endpoint (any HTTP answer counts as reachable)."""
        import httpx

        httpx.head(endpoint(), timeout=PROBE_SECONDS)

    def list_files(self, repo: str) -> list[str]:
        """Every file of the repository (directories left out)."""
        from modelscope.hub.api import HubApi

        entries = HubApi().get_model_files(repo, revision=REVISION, recursive=True)
        return [e["Path"] for e in entries if e.get("Type", "blob") != "tree" and e.get("Path")]

    def download(self, repo: str, names: Sequence[str]) -> list[Path]:
        """The files into the cache, with a progress bar per file.

        The package draws its own bar only for files it fetches in one stream; big files (every
        GGUF) go in parallel ranges and show progress only through a callback.
        """
        from modelscope.hub.callback import TqdmCallback
        from modelscope.hub.snapshot_download import snapshot_download

        root = Path(
            snapshot_download(repo, revision=REVISION, allow_patterns=list(names), progress_callbacks=[TqdmCallback])
        )
        return [root / name for name in names]
