"""Give the agent a tool of your own: a plain typed function with a Google-style docstring.

    python examples/custom_tool.py

The JSON schema the model sees is derived from the signature and the `Args:` section; a tool
without type hints or argument docs is refused when it is registered. A `ToolError` is a fault
of the environment: the model is shown the message, and the episode goes on.
"""

from __future__ import annotations

import json
import os
from typing import Literal

from agent import Agent
from tools import ToolError, tool

PRICES = {"apple": 0.5, "bread": 2.25, "cheese": 7.8}


@tool
def price(item: Literal["apple", "bread", "cheese"], quantity: int = 1) -> str:
    """Look up what some items cost at the corner shop, in euros.

    Args:
        item: What to buy.
        quantity: How many.
    """
    unit = PRICES.get(item)
    if unit is None:
        raise ToolError(f"the shop has no {item!r}; it sells {', '.join(PRICES)}")
    return f"{quantity} x {item} = {unit * quantity:.2f} EUR"


print("schema:", json.dumps(price.schema()["function"]["parameters"]))  # what the model is told about the tool

# tool_choice="price" makes the first step call it; its arguments are generated under a grammar
# derived from the schema (the Literal becomes an enum), so even a tiny model writes a valid call.
agent = Agent(os.environ.get("QWQ_MODEL"), [price], tool_choice="price", seed=0, context_size=4096, max_steps=3)
result = agent.run("How much do 3 apples cost at the corner shop?")
for call in result.tool_calls:
    print(f"call:   price({call.arguments}) -> {call.output}{'  (an error, shown to the model)' if call.error else ''}")
print("answer:", result.answer if result.answer is not None else f"(none: {result.stop_reason})")
