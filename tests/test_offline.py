"""Offline by default when offline: the default tools leave out the web when the network check fails.

The network check is always replaced here (tests never touch the network).
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.cli import options
from agent.cli.main import build_parser, main
from agent.workloads import doctor


def names_for(*argv: str) -> list[str]:
    return options.tool_names(build_parser().parse_args([*argv, "q"] if argv[0] == "solve" else list(argv)))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWQ_NETWORK", raising=False)

    def unreachable(host: str, port: int, timeout: float) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(doctor, "connect", unreachable)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWQ_NETWORK", raising=False)
    monkeypatch.setattr(doctor, "connect", lambda host, port, timeout: None)


def test_offline_the_default_set_drops_the_web_tools_with_one_notice(
    offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert names_for("solve") == ["calculator", "python"]
    notice = capsys.readouterr().err.splitlines()
    assert len(notice) == 1
    assert "offline (cannot reach duckduckgo.com:443 (Network is unreachable))" in notice[0]
    assert "leaving out web_search, read_page" in notice[0]
    assert notice[0].endswith("--tools calculator,python,web_search,read_page keeps them")


def test_online_the_default_set_keeps_every_tool_and_says_nothing(
    online: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert names_for("solve") == ["calculator", "python", "web_search", "read_page"]
    assert capsys.readouterr().err == ""


def test_tools_asked_for_are_kept_offline_and_nothing_is_checked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never() -> str:
        raise AssertionError("the network was checked")

    monkeypatch.setattr(options, "network_problem", never)
    assert names_for("solve", "--tools", "web_search") == ["web_search"]
    assert names_for("solve", "--offline") == ["calculator", "python"]
    assert capsys.readouterr().err == ""


def test_the_environment_can_say_online_or_offline_without_a_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(host: str, port: int, timeout: float) -> None:
        raise AssertionError("the network was checked")

    monkeypatch.setattr(doctor, "connect", never)
    monkeypatch.setenv("QWQ_NETWORK", "off")
    assert options.network_problem() == "QWQ_NETWORK=off"
    monkeypatch.setenv("QWQ_NETWORK", "on")
    assert options.network_problem() is None


def test_bench_measures_the_grammar_of_the_default_tools_users_get(
    offline: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.workloads import bench

    asked: dict[str, Any] = {}

    def measure(model_path: str | None, **kwargs: Any) -> bench.Report:
        asked.update(kwargs)
        return bench.Report(dict.fromkeys(bench.TARGETS), {}, {})

    monkeypatch.setattr(bench, "run", measure)
    assert main(["bench", "--json"]) == 0
    assert asked["tools"] == ["calculator", "python"]
    assert "leaving out web_search, read_page" in capsys.readouterr().err
