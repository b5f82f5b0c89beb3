"""The agent's graph on LangGraph's own server: `langgraph dev` serving examples/langgraph, driven by `langgraph_sdk`.

The server is started once for the module on loopback, with its telemetry, tracing and version
check off (no traffic beyond 127.0.0.1). The runs name their model in the run's configuration:
a `helpers.FakeServer` (so the tests need no model and pass the same way every time), or the
embedded SmolLM2, the graph's default, in the one test marked `model`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FakeServer, call
from llama_server import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "langgraph"
QUIET = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # the CLI's usage report
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # the server's look-up of its latest version on PyPI
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
"""What keeps `langgraph dev` off the network (README "Scaling out" says the same)."""


@pytest.fixture(scope="module")
def langgraph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("langgraph_api", reason="needs the serve extra: pip install 'qwq-agent[serve]'")
    from langgraph_sdk import get_sync_client

    port = free_port()
    log = tmp_path_factory.mktemp("langgraph") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    env |= QUIET | {"PYTHONPATH": str(ROOT), "QWQ_SEED": "0"}
    env.pop("QWQ_MODEL", None)
    cli = Path(sys.executable).with_name("langgraph")
    command = [str(cli), "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=EXAMPLE, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "langgraph dev did not start within 90 s"
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield get_sync_client(url=url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", str(EXAMPLE / ".langgraph_api")], check=False)  # the dev server's own state


def last_turn(prompt: str) -> str:
    return prompt.rsplit("<|im_start|>user", 1)[-1]


def run(client: Any, thread: str, **options: Any) -> list[tuple[str, Any]]:
    return [
        (c.event, c.data) for c in client.runs.stream(thread, "agent", stream_mode=["custom", "updates"], **options)
    ]


def test_a_thread_runs_a_question_streams_its_events_and_answers(langgraph: Any) -> None:
    def model(prompt: str) -> str:
        done = "<tool_response>" in last_turn(prompt)
        return (
            "The answer is " + last_turn(prompt).split("<tool_response>\n")[1][:4]
            if done
            else call("calculator", expression="37 * 89 + 12")
        )

    with FakeServer(model).running() as url:
        thread = langgraph.threads.create()["thread_id"]
        events = run(langgraph, thread, input={"question": "What is 37 * 89 + 12?"},
                     config={"configurable": {"model": f"openai:{url}"}})  # fmt: skip
    custom = [data for event, data in events if event == "custom"]
    assert {"name": "calculator", "arguments": {"expression": "37 * 89 + 12"}} in custom  # the call as it started
    assert any(d.get("call", {}).get("output") == "3305" for d in custom)  # its observation
    assert "".join(d["text"] for d in custom if "text" in d) == "The answer is 3305"  # the answer, streamed
    state = langgraph.threads.get_state(thread)
    assert state["values"]["answer"] == "The answer is 3305" and not state["next"]
    assert [c["name"] for c in state["values"]["tool_calls"]] == ["calculator"]


def test_an_approval_is_an_interrupt_the_client_resumes_with_a_command(langgraph: Any) -> None:
    def model(prompt: str) -> str:
        told = last_turn(prompt)
        return "Declined: " + told.split("error: ")[1][:8] if "<tool_response>" in told else call("python", code="1/0")

    config = {"configurable": {"tools": "python", "approval": "always"}}
    with FakeServer(model).running() as url:
        config["configurable"]["model"] = f"openai:{url}"
        thread = langgraph.threads.create()["thread_id"]
        events = run(langgraph, thread, input={"question": "Run 1/0."}, config=config)
        asked = [data["__interrupt__"][0]["value"] for event, data in events if "__interrupt__" in (data or {})]
        assert asked == [{"tool": "python", "arguments": {"code": "1/0"}, "reason": "code"}]
        assert langgraph.threads.get_state(thread)["next"] == ["act"]  # paused before running the call
        run(langgraph, thread, command={"resume": {"approve": False}}, config=config)
    values = langgraph.threads.get_state(thread)["values"]
    assert values["answer"] == "Declined: a person"
    assert values["tool_calls"][0]["output"].startswith("error: a person declined")


@pytest.mark.model
def test_the_default_model_is_the_embedded_one(langgraph: Any) -> None:
    thread = langgraph.threads.create()["thread_id"]
    events = run(langgraph, thread, input={"question": "What is 37 * 89 + 12?"})
    assert any(e == "custom" and "step" in d for e, d in events)  # it streamed its steps
    values = langgraph.threads.get_state(thread)["values"]
    assert values["answer"] and values["tool_calls"][0]["name"] == "calculator"
