"""Language models behind the agent: the `Model` protocol and its implementations.

`protocol` (what the agent needs of a model), `llama_cpp` (a GGUF in-process), `sources` (where
weights come from), `openai` (an OpenAI-compatible server's `/v1/completions`), `llama_server`
(llama.cpp's server in its own tokens), `openai_chat` (`/v1/chat/completions` only), `served`
(the HTTP, errors and retries they share), `servers` (choosing among them by URL, several
servers at once), `scripted` (a stand-in for tests and benchmarks). Nothing here knows of chat
formats, tools or the loop.
"""
