"""`qwq-agent doctor` on this machine, with the network check injected (tests never go online)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from agent.cli.doctor import report
from agent.workloads import doctor
from tools.sandbox import Layers


def unreachable(host: str, port: int, timeout: float) -> None:
    raise OSError(101, "Network is unreachable")


def reachable(host: str, port: int, timeout: float) -> None:
    assert (host, port) == doctor.SEARCH_HOST and timeout > 0


@pytest.mark.model
def test_doctor_on_this_machine_is_usable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QWQ_CACHE_DIR", str(tmp_path / "cache"))
    checks = doctor.run_checks(context_size=2048, reach=unreachable)
    by_name = {c.name: c for c in checks}
    assert list(by_name) == ["llama.cpp", "model", "memory", "sandbox", "network", "cache", "sessions"]
    assert by_name["llama.cpp"].status in ("ok", "warn") and "llama-cpp-python" in by_name["llama.cpp"].detail
    model = by_name["model"]
    assert model.status == "ok" and "SmolLM2-135M-Instruct" in model.detail and "context 2,048" in model.detail
    assert by_name["network"].status == "warn" and "Network is unreachable" in by_name["network"].detail
    assert "--no-search" in by_name["network"].fix
    assert by_name["cache"].status == "ok" and str(tmp_path / "cache") in by_name["cache"].detail
    out = io.StringIO()
    assert report(checks, out) == 0  # a warning leaves it usable
    text = out.getvalue()
    assert "✓ model: " in text and "! network: " in text and "    fix: " in text and text.endswith("usable\n")


def test_a_missing_model_fails_with_the_fix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import cli

    monkeypatch.setattr(doctor, "connect", reachable)
    monkeypatch.setattr(doctor, "check_sandbox", lambda probe=None: doctor.Check("sandbox", "ok", "stub"))
    assert cli.main(["doctor", "--model", "/nonexistent/model.gguf", "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["usable"] is False
    model = next(c for c in found["checks"] if c["name"] == "model")
    assert model["status"] == "fail" and "model file not found" in model["detail"] and model["fix"]


def test_a_hub_model_not_downloaded_is_not_fetched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    check = doctor.check_model("Qwen/QwQ-32B-GGUF:Q8_0")
    assert check.status == "fail" and "not downloaded yet" in check.detail and "--model Qwen/QwQ-32B-GGUF" in check.fix


def test_network_check_outcomes() -> None:
    assert doctor.check_network(reachable).status == "ok"
    assert doctor.check_network(unreachable).status == "warn"
    release = threading.Event()

    def hang(host: str, port: int, timeout: float) -> None:  # a DNS lookup that never returns
        release.wait()

    hung = doctor.check_network(hang, timeout=0.05)
    release.set()
    assert hung.status == "warn" and "did not answer" in hung.detail


def test_sandbox_layers_missing_warn_or_fail_when_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    bare = Layers(None, False, False, False, True, "bubblewrap (bwrap) is not installed")
    monkeypatch.delenv("QWQ_SANDBOX_STRICT", raising=False)
    loose = doctor.check_sandbox(lambda: bare)
    assert loose.status == "warn" and "filesystem: the code can read and write your files" in loose.detail
    assert "apt-get install bubblewrap" in loose.fix
    monkeypatch.setenv("QWQ_SANDBOX_STRICT", "1")
    assert doctor.check_sandbox(lambda: bare).status == "fail"
    full = Layers("/usr/bin/bwrap", True, True, True, True, syscalls=True, cgroup=2, inodes=True, identity=True)
    assert doctor.check_sandbox(lambda: full).status == "ok" and "syscalls" in doctor.check_sandbox(lambda: full).detail
    unfiltered = Layers("/usr/bin/bwrap", True, True, True, True, cgroup=1, inodes=True, identity=True)
    gap = doctor.check_sandbox(lambda: unfiltered)
    assert gap.status == "fail" and "syscalls: the code can use kernel keyrings" in gap.detail
    assert "libseccomp2" in gap.fix and "bubblewrap" not in gap.fix


def test_directories(tmp_path: Path) -> None:
    assert doctor.check_directory("cache", tmp_path).status == "ok"
    assert "will be created" in doctor.check_directory("cache", tmp_path / "a" / "b").detail
    blocker = tmp_path / "file"
    blocker.write_text("x")
    failed = doctor.check_directory("sessions", blocker)
    assert failed.status == "fail" and "not a directory" in failed.detail and "QWQ_SESSIONS" in failed.fix
    assert doctor.check_directory("sessions", blocker / "sub").status == "fail"


def test_failing_check_makes_the_report_exit_1() -> None:
    out = io.StringIO()
    checks = [doctor.Check("model", "fail", "model file not found: x.gguf", "pass --model")]
    assert report(checks, out) == 1
    assert (
        out.getvalue()
        == "✗ model: model file not found: x.gguf\n    fix: pass --model\nnot usable: see the fixes above\n"
    )


def test_the_model_line_shows_the_familys_chat_format_and_sampling() -> None:
    """Sampling defaults come from the family's model cards: Qwen3 thinking 0.6/0.95/20, gpt-oss 1.0/1.0."""
    from agent.scripted import ScriptedModel
    from agent.workloads.doctor import model_format

    templates = Path(__file__).parent / "fixtures" / "templates"
    qwen3 = ScriptedModel([], chat_template=(templates / "Qwen-Qwen3-0.6B.jinja").read_text())
    assert model_format(qwen3.describe()) == (
        "reasoning model, chat format qwen3, sampling temperature 0.6, top_p 0.95, top_k 20, min_p 0"
    )
    oss = ScriptedModel([], chat_template=(templates / "openai-gpt-oss-120b.jinja").read_text())
    assert "chat format gpt-oss, sampling temperature 1, top_p 1, top_k 0" in model_format(oss.describe())
    plain = ScriptedModel([], thinking=False, chat_template=(templates / "Qwen-Qwen3-0.6B.jinja").read_text())
    assert "temperature 0.7, top_p 0.8, top_k 20" in model_format(plain.describe())
