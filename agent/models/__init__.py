"""Language models behind the agent: the `Model` protocol and its implementations.

`protocol` (what the agent needs of a model), `llama_cpp` (a GGUF in-process), `sources` (where
weights come from), `openai` (an OpenAI-compatible server), `scripted` (a stand-in for tests and
benchmarks). Nothing here knows of chat formats, tools or the loop.
"""
