"""The core loop: records, the transcript and its chat format, the parser, the call grammar, one
assistant turn, the approval and loop policy, and the LangGraph state machine that runs them.

It imports only models, tools and prompts; nothing here prints, parses flags or builds agents
(see `agent.api`).
"""
