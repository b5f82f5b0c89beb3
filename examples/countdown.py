"""Countdown on the embedded model: a few generated instances, and the checker's verdict on each.

    python examples/countdown.py [N]          # N instances (default 3), seed 0
    QWQ_MODEL=Qwen/QwQ-32B-GGUF python examples/countdown.py 10

Each instance is some numbers and a target; the agent (with the calculator, to try candidates)
must answer with one expression that uses each number at most once and equals the target. The
checker reads that expression through the calculator's notation and an allow-list, never
`eval`, and says why it is right or wrong. The tiny embedded model exercises the machinery; it is
no match for the puzzle. `qwq-agent eval --task countdown` runs the same at scale.
"""

from __future__ import annotations

import os
import sys
import time

from agent import Agent
from agent.workloads import countdown
from tools import default_tools

n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
began = time.monotonic()
agent = Agent(
    os.environ.get("QWQ_MODEL"), default_tools(["calculator"]), seed=0, context_size=2048, max_steps=3, max_tokens=160
)
right = 0
for instance in countdown.generate(n, seed=0):
    result = agent.run(countdown.question(instance.numbers, instance.target))
    verdict = countdown.grade(result.answer or "", instance.numbers, instance.target)
    right += verdict.correct
    numbers = ", ".join(map(str, instance.numbers))
    print(f"numbers {numbers} -> target {instance.target}   (one solution: {instance.solution})")
    for call in result.tool_calls:
        print(f"  tool:    {call.name}({call.arguments}) -> {(call.output.splitlines() or [''])[0]}")
    print(f"  answer:  {verdict.expression or f'(none: {result.stop_reason})'}")
    print(f"  verdict: {'right' if verdict.correct else 'wrong'}: {verdict.reason}")
print(f"{right}/{n} right in {time.monotonic() - began:.1f} s")
