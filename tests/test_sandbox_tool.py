"""The Python sandbox as the model and the program see it: notebook cells, the tool, strict mode, the probe."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sandbox_support import check_after, settled

from tools import sandbox as sandbox_module
from tools import sandbox_cgroup, sandbox_layers, sandbox_seccomp
from tools.registry import ToolError
from tools.sandbox import Execution, Layers, Limits, Sandbox, execute, observe, probe, python, run_python


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    with Sandbox(strict=True) as box:
        yield box


@pytest.fixture()
def box(shared: Sandbox) -> Iterator[Sandbox]:
    yield shared
    check_after(shared)


# What the model relies on.


def test_numpy_and_sympy_are_importable(box: Sandbox) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("sympy")
    result = box.run("import numpy as np, sympy as sp\nprint(np.arange(4).sum(), sp.factorint(360))")
    assert result.stdout == "6 {2: 3, 3: 2, 5: 1}\n"


def test_last_expression_is_shown_like_a_notebook(box: Sandbox) -> None:
    assert box.run("x = 6\nx * 7").stdout == "42\n"
    assert box.run("None").stdout == ""


def test_traceback_points_at_the_line(box: Sandbox) -> None:
    result = box.run("a = 1\nb = 0\nprint(a / b)")
    assert result.error == "exception" and not result.ok
    assert 'File "<cell 0>", line 3' in result.stderr and "print(a / b)" in result.stderr
    assert result.stderr.strip().endswith("ZeroDivisionError: division by zero")
    assert "<string>" not in result.stderr  # the worker's own frames are hidden


def test_syntax_error_is_reported_plainly(box: Sandbox) -> None:
    result = box.run("def f(:\n    pass")
    assert result.error == "exception" and "SyntaxError" in result.stderr and "Traceback" not in result.stderr


def test_exit_codes(box: Sandbox) -> None:
    assert box.run("import sys; print(1); sys.exit(0)").ok
    failed = box.run("import sys; sys.exit(3)")
    assert failed.error == "exception" and "SystemExit: 3" in failed.stderr


def test_output_before_a_timeout_is_kept(box: Sandbox) -> None:
    result = box.run("print('so far')\nwhile True: pass", 0.5)
    assert result.error == "timeout" and result.stdout == "so far\n"


def test_small_output_cap_truncates() -> None:
    with Sandbox(strict=True, limits=Limits(output_bytes=1000), preload=()) as box:
        result = box.run("print('y' * 5000)")
        assert result.truncated and result.error == "output_limit" and result.stdout == "y" * 1000


def test_sessions_keep_variables_and_lose_them_after_a_timeout() -> None:
    with Sandbox(session=True, strict=True) as box:
        assert box.run("x = 41\nimport subprocess\nsubprocess.Popen(['sleep', '300'])").ok
        assert box.run("x + 1").stdout == "42\n"
        assert box.run("1 / 0").error == "exception"
        assert box.run("x").stdout == "41\n"  # an exception keeps the session
        assert len(settled(box, 3)) == 3  # init, worker, the session's runner; the sleep was swept
        stopped = box.run("y = 1\nwhile True: pass", 0.5)
        assert stopped.error == "timeout" and "session was restarted" in stopped.stderr
        assert "NameError" in box.run("x").stderr


def test_benchmark_reports_sane_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    # The targets themselves are checked by `qwq-agent bench`, not by a timed test.
    monkeypatch.setenv(sandbox_module.STRICT_ENV, "1")
    figures = sandbox_module.benchmark(runs=5)
    assert 0 < figures["warm"] < figures["cold"] and figures["warm_over_cold"] < 1, figures
    assert figures["loop_1s"] >= 1.0, figures


# The tool the model sees.


def test_tool_schema() -> None:
    schema = python.schema()["function"]
    assert schema["name"] == "python"
    assert set(schema["parameters"]["properties"]) == {"code", "timeout"}
    assert schema["parameters"]["required"] == ["code"]
    assert "starts afresh" in schema["description"]
    with Sandbox(session=True, strict=True, preload=()) as box:
        assert "persist between calls" in box.as_tool().description


def test_observation_text() -> None:
    ok = Execution("4\n", "", True, None, 0.01, False)
    assert observe(ok, 10) == "4"
    traceback = "Traceback ...\nNameError: name 'x' is not defined\n"
    failed = Execution("", traceback, False, "exception", 0.01, False)
    with pytest.raises(ToolError, match=r"NameError: name 'x' is not defined$"):
        observe(failed, 10)  # a failed call: shown as one, and the model reads the traceback
    assert "no output" in observe(Execution("", "", True, None, 0.01, False), 10)
    long = observe(Execution("a" * 10000 + "END", "", True, None, 0.01, False), 10)
    assert len(long) < 4200 and long.endswith("END") and "characters cut" in long
    with pytest.raises(ToolError, match="longer than its 2 s limit"):
        observe(Execution("partial", "", False, "timeout", 2.0, False), 2)


def test_run_python_and_execute_use_strict_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sandbox_module.STRICT_ENV, "1")
    assert run_python("print(2 ** 10)") == "1024"
    assert execute("1").stdout == "1\n"
    assert sandbox_module._shared[True].strict
    with pytest.raises(ToolError, match="longer than"):
        run_python("while True: pass", timeout=0.3)


# Strict mode fails closed; otherwise one warning.

BARE = Layers(None, filesystem=False, network=False, processes=False, unprivileged=True, detail="no bwrap")


def test_strict_mode_fails_closed_when_a_layer_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "probe", lambda: BARE)
    with pytest.raises(ToolError, match=r"strict mode.*network"):
        Sandbox(strict=True)
    monkeypatch.setenv(sandbox_module.STRICT_ENV, "1")
    with pytest.raises(ToolError):
        Sandbox()


def test_without_strict_mode_a_missing_layer_is_named_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox_module, "probe", lambda: BARE)
    monkeypatch.setattr(sandbox_layers, "_warned", False)
    monkeypatch.delenv(sandbox_module.STRICT_ENV, raising=False)
    quiet = Sandbox(preload=())
    with caplog.at_level(logging.WARNING, logger="tools.sandbox"), quiet, Sandbox(preload=()) as again:
        assert quiet.run("print(1)").stdout == "1\n" and again.run("2").stdout == "2\n"
    warnings = [r for r in caplog.records if "layers missing" in r.message]
    assert len(warnings) == 1 and "the code can reach the network" in warnings[0].message


# The probe is honest: it reports what a trial run saw from inside, and strict mode refuses each gap.

FULL = Layers("/usr/bin/bwrap", True, True, True, True, syscalls=True, cgroup=1, inodes=True, identity=True)


@pytest.fixture()
def fresh_probe() -> Iterator[None]:
    probe.cache_clear()
    yield
    probe.cache_clear()


def test_probe_finds_every_layer_here() -> None:
    layers = probe()
    assert layers.missing() == [], layers
    assert layers.bwrap and layers.cgroup in (1, 2)


def test_probe_sees_a_layer_that_did_not_take_hold(monkeypatch: pytest.MonkeyPatch, fresh_probe: None) -> None:
    real = sandbox_module.command

    def without_remount(*args: object, **kwargs: object) -> list[str]:
        line = real(*args, **kwargs)  # type: ignore[arg-type]
        skip = "import os, sys\nos.execv(sys.argv[1], sys.argv[1:])"
        return [skip if "nr_inodes" in part else part for part in line]

    monkeypatch.setattr(sandbox_module, "command", without_remount)
    layers = probe()
    assert [gap.split(":")[0] for gap in layers.missing()] == ["inodes"], layers
    with pytest.raises(ToolError, match="inodes"):
        Sandbox(strict=True, preload=())


def test_probe_without_libseccomp_or_a_cgroup(monkeypatch: pytest.MonkeyPatch, fresh_probe: None) -> None:
    def no_libseccomp() -> bytes:
        raise sandbox_seccomp.SeccompUnavailable("libseccomp is not available (test)")

    def no_cgroup() -> sandbox_cgroup.Placement:
        raise sandbox_cgroup.CgroupUnavailable("cgroup v2: not delegated (test)")

    monkeypatch.setattr(sandbox_seccomp, "program", no_libseccomp)
    monkeypatch.setattr(sandbox_cgroup, "placement", no_cgroup)
    layers = probe()
    assert [gap.split(":")[0] for gap in layers.missing()] == ["syscalls", "cgroup"], layers
    assert "libseccomp is not available" in layers.detail and "not delegated" in layers.detail
    with pytest.raises(ToolError, match=r"syscalls.*cgroup"):
        Sandbox(strict=True, preload=())


@pytest.mark.parametrize("layer", ["syscalls", "cgroup", "inodes", "identity", "processes"])
def test_strict_mode_refuses_each_missing_layer(layer: str) -> None:
    lacking = Layers(**{**FULL.__dict__, layer: 0 if layer == "cgroup" else False})
    with pytest.raises(ToolError, match=f"strict mode.*{layer}"):
        Sandbox(strict=True, layers=lacking, preload=())
