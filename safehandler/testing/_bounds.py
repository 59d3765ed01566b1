"""Bounds on a soak: Lambda's per-invocation timeout, and a budget for the whole run.

The timeout is enforced as Lambda enforces it, from outside the handler: ``SIGALRM`` raises
``InvocationTimeout`` in the thread that runs the handler (a ``BaseException``, so a handler's
``except Exception`` cannot swallow it, as it could not swallow Lambda stopping it). Signals
reach only the main thread: elsewhere (a soak started from a worker thread), or while another
timer is armed (pytest-timeout's signal method), the context still counts down but nothing
interrupts the handler.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["DEFAULT_TIMEOUT", "MAX_TIMEOUT", "InvocationTimeout", "deadline"]

DEFAULT_TIMEOUT = 3.0  # seconds: the Lambda console's default for a new function
MAX_TIMEOUT = 900.0  # Lambda's maximum


class InvocationTimeout(BaseException):
    """The invocation ran past its timeout: "Task timed out after 3.00 seconds"."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise ``InvocationTimeout`` in the block if it runs longer than ``seconds``."""
    if (
        threading.current_thread() is not threading.main_thread()
        or not hasattr(signal, "setitimer")
        or signal.getitimer(signal.ITIMER_REAL)[0] > 0  # someone's timer (pytest-timeout's)
    ):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise InvocationTimeout(f"Task timed out after {seconds:.2f} seconds")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
