"""Stream an episode's events as they happen, and trace them to a file for later.

    python examples/stream_events.py [TRACE.jsonl]

Each event is a small frozen dataclass from `agent.records`: reasoning and answer text as it
streams, a tool call starting, its observation, a step's token counts, and the final `Result`.
The same events are written to a JSONL trace, which `qwq-agent trace html` turns into a page.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from agent import Agent
from agent.core.records import AnswerText, Final, Observation, ReasoningText, StepFinished, ToolCallStarted
from agent.ui.trace import Tracer
from tools import default_tools

trace_path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "qwq-stream-example.jsonl"
agent = Agent(os.environ.get("QWQ_MODEL"), default_tools(["calculator"]), seed=0, context_size=4096)
tracer = Tracer(trace_path, command="example")
tracer.attach(agent)  # from now on every episode of this agent is traced

for event in agent.stream("What is 2^10 - 24?"):
    match event:
        case ReasoningText(text) | AnswerText(text):
            print(text, end="", flush=True)
        case ToolCallStarted(name, arguments):
            print(f"\n[calling {name} with {arguments}]")
        case Observation(call):
            print(f"[{call.name} returned {call.output!r} in {call.seconds:.2f} s]")
        case StepFinished(step, evaluated, reused, generated):
            print(f"\n[step {step}: {evaluated} prompt tokens evaluated, {reused} reused, {generated} generated]")
        case Final(result):
            print(f"[final answer: {result.answer!r}, stop reason: {result.stop_reason}]")
tracer.close()
print(f"[trace written to {trace_path}; see it with: qwq-agent trace html {trace_path}]")
