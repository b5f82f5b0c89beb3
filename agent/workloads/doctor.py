"""The checks behind `qwq-agent doctor`: can this machine run the agent, and how to fix what is missing.

Each check returns a `Check`: ok, warn (the agent runs, with something missing) or fail (it
cannot run), with what was found and, when not ok, the fix. The checks: llama.cpp and its build
(CPU features, GPU offload), the model (found, a whole GGUF, loadable; its size and context),
memory for it, the sandbox's isolation layers, the network for web search (one DNS lookup and
one TCP connect with a short timeout, nothing sent), and the cache and session directories
(writable, or creatable).

This module only inspects (`agent.cli.doctor` prints the report): it installs, downloads and
changes nothing, except that it loads the model once to prove it loads. A model named on a hub
(Hugging Face, ModelScope) is looked up in that hub's local cache only.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]

SEARCH_HOST = ("duckduckgo.com", 443)
"""Where the network check connects: the default search backend's host."""
GPU_INSTALL = {
    "CUDA": 'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python',
    "Metal": 'CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir llama-cpp-python',
}
"""How to rebuild llama-cpp-python with GPU offload."""


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    """What was checked, in a word or two."""
    status: Status
    """ok; warn: usable with something missing; fail: the agent cannot run."""
    detail: str
    """What was found."""
    fix: str = ""
    """What to do about it, when the status is not ok."""


def check_llama_cpp() -> Check:
    """llama-cpp-python imports; its CPU features and whether it can offload to a GPU."""
    try:
        import llama_cpp
    except ImportError as exc:
        return Check("llama.cpp", "fail", f"llama-cpp-python does not import: {exc}", "pip install llama-cpp-python")
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    features = [p.split("=")[0].strip() for p in info.replace("CPU :", "").split("|") if p.strip().endswith("= 1")]
    backends = sorted({p.split(":")[0].strip() for p in info.split("|") if ":" in p} - {"CPU"})
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    detail = f"llama-cpp-python {llama_cpp.__version__}; CPU: {' '.join(features[:12]) or 'basic'}"
    if gpu:
        return Check("llama.cpp", "ok", f"{detail}; GPU offload: yes ({', '.join(backends) or 'GPU backend'})")
    fix = f"for a GPU, rebuild: {GPU_INSTALL['CUDA']} (NVIDIA) or {GPU_INSTALL['Metal']} (Apple)"
    return Check("llama.cpp", "warn", f"{detail}; GPU offload: not built in (CPU only)", fix)


def _local_path(spec: str | None) -> Path | None:
    """The file a model spec names on this machine: the embedded model, a path, or a hub spec's
    files if they are in the hub's cache (None if not: nothing is downloaded)."""
    from agent.models.sources import cached_download, embedded_model_path, is_hub_spec

    if spec is None:
        return embedded_model_path()
    if is_hub_spec(spec):
        return cached_download(spec)
    return Path(spec).expanduser()


def check_model(spec: str | None = None, context_size: int = 8192) -> Check:
    """The model is found, is a whole GGUF, and loads; its size and context."""
    import importlib.util

    from agent.models.hub_modelscope import INSTALL as MODELSCOPE_INSTALL
    from agent.models.hub_modelscope import PREFIX as MODELSCOPE_PREFIX
    from agent.models.llama_cpp import LlamaCppModel
    from agent.models.protocol import ModelError
    from agent.models.sources import check_gguf

    try:
        path = _local_path(spec)
        if path is None:
            return Check(
                "model",
                "fail",
                f"{spec} is not downloaded yet",
                f"run `qwq-agent solve 'hello' --model {spec}` once, on a connected machine, to download it",
            )
        check_gguf(path)
        model = LlamaCppModel(path, context_size=context_size)
    except ModelError as exc:
        if spec is not None and spec.startswith(MODELSCOPE_PREFIX) and importlib.util.find_spec("modelscope") is None:
            return Check("model", "fail", str(exc), MODELSCOPE_INSTALL)
        return Check("model", "fail", str(exc), "pass --model with a path to a whole .gguf file")
    facts = model.describe()
    trained = facts.get("trained_context")
    detail = (
        f"{facts['name']} ({path}): {facts['size_bytes'] / 2**30:.2f} GiB, context {facts['context_size']:,}"
        + (f" of {int(trained):,} trained" if trained else "")
        + ", "
        + model_format(facts)
    )
    return Check("model", "ok", detail)


def model_format(facts: dict[str, Any]) -> str:
    """The model's kind, chat format and sampling defaults (its family's model cards'), in words."""
    kind = f"{'reasoning' if facts['thinking'] else 'instruct'} model"
    s = facts.get("sampling")
    if s is None:
        return kind
    sampling = f"temperature {s['temperature']:g}, top_p {s['top_p']:g}, top_k {s['top_k']}, min_p {s['min_p']:g}"
    if s["repeat_penalty"] != 1.0:
        sampling += f", repeat penalty {s['repeat_penalty']:g}"
    return f"{kind}, chat format {facts.get('chat_format', '?')}, sampling {sampling}"


def check_memory(spec: str | None = None) -> Check:
    """Enough memory for the model's weights, when they are not offloaded to a GPU."""
    try:
        path = _local_path(spec)
        size = path.stat().st_size if path is not None else None
    except Exception:  # the model check reports a missing model; nothing to compare here
        size = None
    if size is None:
        return Check("memory", "ok", "no model file to compare with")
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    detail = f"{available / 2**30:.1f} GiB available, the weights take {size / 2**30:.2f} GiB plus the KV cache"
    if size > available:
        return Check(
            "memory",
            "warn",
            detail,
            "offload layers to a GPU (--n-gpu-layers), use a smaller quantization, or expect swapping",
        )
    return Check("memory", "ok", detail)


def check_sandbox(probe: Callable[[], Any] | None = None) -> Check:
    """Which isolation layers the Python sandbox gets on this machine."""
    if probe is None:
        from tools.sandbox import probe as probe_layers

        probe = probe_layers
    layers = probe()
    missing = layers.missing()
    if not missing:
        return Check("sandbox", "ok", f"every layer: bubblewrap ({layers.bwrap}), " + ", ".join(layers.present()))
    strict = os.environ.get("QWQ_SANDBOX_STRICT") == "1"
    detail = "missing layers: " + "; ".join(missing) + (f" ({layers.detail})" if layers.detail else "")
    fix = "; ".join(layers.fixes()) + "; or leave the python tool out"
    return Check("sandbox", "fail" if strict else "warn", detail, fix)


def connect(host: str, port: int, timeout: float) -> None:
    """Resolve `host` and open (then close) one TCP connection; raises OSError on failure."""
    with socket.create_connection((host, port), timeout=timeout):
        pass


def check_network(reach: Callable[[str, int, float], None] | None = None, timeout: float = 3.0) -> Check:
    """Web search's host is reachable: one DNS lookup and TCP connect (`reach`, `connect` by default)."""
    host, port = SEARCH_HOST
    reach = reach or connect
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            reach(host, port, timeout)
            outcome.append(None)
        except BaseException as exc:  # reported, never raised: the check must not fail the doctor
            outcome.append(exc)

    # getaddrinfo has no timeout of its own: a thread bounds the DNS lookup too.
    worker = threading.Thread(target=attempt, daemon=True, name="qwq-doctor-network")
    worker.start()
    worker.join(timeout + 0.5)
    fix = "check the connection or proxy; or run offline with --no-search / --offline"
    if not outcome:
        return Check("network", "warn", f"{host}:{port} did not answer within {timeout:g} s; web search will fail", fix)
    if outcome[0] is not None:
        reason = outcome[0].strerror if isinstance(outcome[0], OSError) and outcome[0].strerror else outcome[0]
        return Check("network", "warn", f"cannot reach {host}:{port} ({reason}); web search will fail", fix)
    return Check("network", "ok", f"{host}:{port} reachable: web search can work")


def default_session_dir() -> Path:
    """The directory of the sessions file (`agent.sessions.default_path`, set by `$QWQ_SESSIONS`)."""
    try:
        from agent.sessions import default_path
    except ImportError:  # sessions are optional: fall back to where they would go
        state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        return state / "qwq-agent"
    return default_path().parent


def check_directory(name: str, path: Path) -> Check:
    """`path` exists and takes a file, or can be created (its nearest existing parent is writable)."""
    variable = "QWQ_CACHE_DIR" if name == "cache" else "QWQ_SESSIONS (the sessions file)"
    fix = f"make {path} writable, or point {variable} elsewhere"
    if path.is_dir():
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            return Check(name, "fail", f"{path} is not writable ({exc.strerror})", fix)
        return Check(name, "ok", f"{path} is writable")
    if path.exists():
        return Check(name, "fail", f"{path} exists and is not a directory", fix)
    parent = next(p for p in path.parents if p.exists())
    if os.access(parent, os.W_OK | os.X_OK) and parent.is_dir():
        return Check(name, "ok", f"{path} will be created (in {parent})")
    return Check(name, "fail", f"{path} cannot be created: {parent} is not writable", fix)


def run_checks(
    model: str | None = None,
    context_size: int = 8192,
    *,
    reach: Callable[[str, int, float], None] | None = None,
    probe: Callable[[], Any] | None = None,
) -> list[Check]:
    """Every check, in order; `reach` and `probe` can be replaced (tests never touch the network)."""
    from tools.web import default_cache_dir

    checks = [check_llama_cpp()]
    if checks[0].status != "fail":
        checks.append(check_model(model, context_size))
        checks.append(check_memory(model))
    checks.append(check_sandbox(probe))
    checks.append(check_network(reach))
    checks.append(check_directory("cache", default_cache_dir()))
    checks.append(check_directory("sessions", default_session_dir()))
    return checks
