"""Embed the agent's graph in a LangGraph pipeline of your own, as a subgraph.

    python examples/subgraph.py

`agent.graph` is a compiled LangGraph graph. Added as a node, it reads the keys it shares with
the parent's state (`question`) and writes back the ones it shares (`answer`); the parent's
other keys pass through untouched. Streaming with `subgraphs=True` brings the agent's own
events (tool calls, observations, tokens) up to the parent, tagged with the node they came from.
"""

from __future__ import annotations

import os
from typing import TypedDict

from langgraph.graph import END, START, StateGraph

from agent import Agent
from agent.core.records import Observation, ToolCallStarted
from tools import default_tools


class Order(TypedDict, total=False):
    """The parent pipeline's state; `question` and `answer` are shared with the agent's state."""

    boxes: int
    price: int
    shipping: int
    question: str
    answer: str | None
    invoice: str


def ask(order: Order) -> Order:
    """Turn the order into a question for the agent."""
    return {"question": f"What is {order['boxes']} * {order['price']} + {order['shipping']}?"}


def invoice(order: Order) -> Order:
    """Write the invoice line from the agent's answer."""
    return {
        "invoice": f"{order['boxes']} boxes at {order['price']} plus {order['shipping']} shipping: {order['answer']}"
    }


agent = Agent(os.environ.get("QWQ_MODEL"), default_tools(["calculator"]), seed=0, context_size=4096)
pipeline = StateGraph(Order)
pipeline.add_node("ask", ask)
pipeline.add_node("agent", agent.graph)  # the whole agent loop is one node of this graph
pipeline.add_node("invoice", invoice)
pipeline.add_edge(START, "ask")
pipeline.add_edge("ask", "agent")
pipeline.add_edge("agent", "invoice")
pipeline.add_edge("invoice", END)
graph = pipeline.compile()

print(graph.get_graph(xray=True).draw_mermaid())  # xray shows the agent's nodes inside the pipeline
final: Order = {}
for namespace, mode, chunk in graph.stream(
    {"boxes": 3, "price": 17, "shipping": 5}, stream_mode=["custom", "values"], subgraphs=True
):
    if mode == "custom" and isinstance(chunk, ToolCallStarted):
        print(f"[{namespace[0].split(':')[0]}] calling {chunk.name} {chunk.arguments}")
    elif mode == "custom" and isinstance(chunk, Observation):
        print(f"[{namespace[0].split(':')[0]}] {chunk.call.name} returned {chunk.call.output}")
    elif mode == "values" and not namespace:
        final = chunk  # the parent's state after each of its steps
print("invoice:", final["invoice"])
