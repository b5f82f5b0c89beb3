"""The old home of `ScriptedModel`, kept so that `from agent.scripted import ScriptedModel` works.

The model lives in `agent.models.scripted`.
"""

from agent.models.scripted import END, ScriptedModel

__all__ = ["END", "ScriptedModel"]
