"""What a person sees of an episode: the terminal view, traces (written, replayed, as HTML),
pictures of the graph. Nothing here runs a model; nothing here parses flags (see `agent.cli`).
"""
