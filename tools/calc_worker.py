"""The calculator's worker process: one JSON request per line in, one JSON answer per line out.

`tools.calculator` starts it (through `tools.worker`) as `python -I -c "... serve()"`. It imports
sympy, warms up sympy's lazy imports, caps its own address space at `MEMORY_BYTES`, says
`{"ready": true}`, then answers `{"expression": text}` with `{"result": text}` or
`{"error": text}`. After a memory fault it answers with `"exiting": true` and exits, since
sympy's caches may hold the debris. Its stdout carries only the protocol: a stray print goes
to stderr.

It does not: time itself out (the parent kills it past the deadline), keep state between
requests beyond sympy's caches, or read anything but its stdin.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tools.calc_format import answer
from tools.calc_functions import FUNCTIONS, setup
from tools.calc_parse import parse
from tools.registry import ToolError

MEMORY_BYTES = 512 << 20
"""Address-space cap (RLIMIT_AS) of the worker process."""


def evaluate(expression: str) -> str:
    """The answer to one expression, in this process (no time or memory bound: tests and `serve`)."""
    if not FUNCTIONS:
        setup()
    return answer(parse(expression))


def serve() -> None:
    """Worker main loop: JSON line in, JSON line out; exits at end of input or after a memory fault."""
    import resource

    setup()
    for warm_up in ("sqrt(8)/3 + 1/7", "solve x^2 - 2 = 0"):  # sympy's lazy imports, before real calls
        evaluate(warm_up)
    sys.setrecursionlimit(10_000)  # long sums nest deeply; the input length bounds the depth
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    channel, sys.stdout = sys.stdout, sys.stderr  # a stray print must not corrupt the protocol

    def reply(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    reply({"ready": True})
    for line in sys.stdin:
        try:
            reply({"result": evaluate(json.loads(line)["expression"])})
        except ToolError as exc:
            reply({"error": str(exc)})
        except MemoryError:
            megabytes = MEMORY_BYTES >> 20
            reply({"error": f"out of memory: the calculation needs more than {megabytes} MiB", "exiting": True})
            return
        except RecursionError:
            reply({"error": "too deeply nested to evaluate"})
        except Exception as exc:  # sympy's verdict on input it cannot handle; the model should hear it
            reply({"error": f"could not evaluate: {type(exc).__name__}: {exc}"})
