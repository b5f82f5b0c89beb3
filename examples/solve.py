"""Solve a math question from Python and look at what the agent did.

    python examples/solve.py                       # the embedded SmolLM2 model
    QWQ_MODEL=Qwen/QwQ-32B-GGUF python examples/solve.py

Prints the answer, each tool call with its result, and what the episode cost.
"""

from __future__ import annotations

import os

from agent import Agent
from tools import default_tools

agent = Agent(os.environ.get("QWQ_MODEL"), default_tools(["calculator"]), seed=0, context_size=4096)
result = agent.run("What is 37 * 89 + 12?")

print("answer:", result.answer)
for call in result.tool_calls:
    print(f"tool:   {call.name}({call.arguments}) -> {call.output}  [{call.seconds:.2f} s]")
used = result.usage
print(
    f"cost:   {used.steps} steps, {used.prompt_evaluated} prompt tokens evaluated "
    f"({used.prompt_reused} reused from the KV cache), {used.generated_tokens} generated, "
    f"{used.time_total_s:.1f} s"
)
