"""The one irreversible step: once the response is out, flush everything and exit.

Nothing here runs inside a handler. The engine *requests* a recycle when the environment is
unhealthy; the runtime hook (``runtime.py``) carries it out between invocations, after the
response of the last one was posted and before the next is asked for.

Under the layer's exec wrapper (``SAFEHANDLER_SUPERVISED=1``) the process exits with
``RECYCLE_STATUS`` and the wrapper starts a fresh runtime: Lambda never sees an exit. Without
it (the decorator alone) the process exits and Lambda replaces the environment: the next
invocation pays a cold start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from ._constants import LAMBDA_MAX_CONCURRENCY, LOGGER_NAME, SUPERVISED

__all__ = ["RECYCLE_STATUS", "allowed", "pending", "recycle_now", "request"]

RECYCLE_STATUS = 75  # EX_TEMPFAIL: "try again", which is what the wrapper does

_reasons: list[str] = []


def allowed() -> bool:
    """Lambda Managed Instances do not respawn workers: report there, never exit."""
    return not os.environ.get(LAMBDA_MAX_CONCURRENCY)


def request(reasons: list[str]) -> None:
    if not _reasons:
        _reasons.extend(reasons)


def pending() -> bool:
    return bool(_reasons)


def recycle_now() -> None:  # pragma: no cover - ends the process; tested end to end
    supervised = os.environ.get(SUPERVISED) == "1"
    logging.getLogger(LOGGER_NAME).warning(
        "safehandler: recycling the environment (%s): %s",
        "restarting the runtime" if supervised else "exiting; Lambda starts a new one",
        "; ".join(_reasons),
    )
    logging.shutdown()  # flushes every handler: CloudWatch gets the last lines
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # exiting anyway
            stream.flush()
    os._exit(RECYCLE_STATUS if supervised else 0)
