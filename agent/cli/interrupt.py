"""Ctrl-C that stops a generation within a token: the SIGINT handler of the agent commands.

The model's token loop may run in another thread (a parallel sample's, a batch worker's, the
model's own batcher), which a `KeyboardInterrupt` in the main thread never reaches: the handler
first cancels the model's generations (models that have a `cancel()` method), then raises
`KeyboardInterrupt` as Python's own handler does. That thread then ends its step at once instead
of generating until its budget.

This module installs the handler; it decides nothing about exit codes or what is printed.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def cancel_on_interrupt(model: Any) -> None:
    """Make Ctrl-C cancel `model`'s generations before it interrupts the main thread."""
    cancel = getattr(model, "cancel", None)
    if cancel is None or threading.current_thread() is not threading.main_thread():
        return

    def interrupted(signum: int, frame: Any) -> None:
        cancel()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
