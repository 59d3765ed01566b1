"""The one irreversible step: once the response is out, flush everything and exit.

Nothing here runs inside a handler. The engine *requests* a recycle when the environment is
unhealthy; the runtime hook carries it out between invocations, after the response of the last
one was posted and before the next is asked for. With ``runtime.py`` this is the only module
that knows awslambdaric, AWS's runtime client: ``install_hook()`` wraps the client's
``wait_next_invocation``, which awslambdaric's loop calls once it has posted invocation N's
response, to ask for N+1. That gap is the one safe place to exit. The base client class is
patched if it exists, else the concrete one; if neither does, one warning and report-only mode.
Nothing is decided from a background thread.

The exit is a clean one: ``SystemExit`` out of awslambdaric's loop, so the interpreter ends as
any program does: ``atexit`` callbacks run (how telemetry SDKs flush), open files are flushed
and closed, stdio too. Bounded: if that takes longer than ``EXIT_BUDGET_S`` (a callback that
hangs, a non-daemon thread that never ends), ``SIGALRM`` ends the process.

Under the layer's exec wrapper, the runtime first creates the wrapper's marker file
(``SAFEHANDLER_RECYCLE_MARKER``, in a directory only the wrapper made) and the wrapper starts a
fresh runtime: Lambda never sees an exit. The exit status carries nothing, so a handler's own
``sys.exit(75)`` is its own. Without the wrapper (the decorator alone) the process exits with 0
and Lambda replaces the environment: the next invocation pays a cold start.
"""

from __future__ import annotations

import functools
import os
import sys
from types import ModuleType

from . import _fleet
from ._constants import LAMBDA_MAX_CONCURRENCY, LAMBDA_RUNTIME_API, LOGGER_NAME, RECYCLE_MARKER
from ._imports import when_imported
from ._records import PastRecycle
from ._redact import redact_text
from ._suppress import suppress

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "EXIT_BUDGET_S",
    "allowed",
    "install_hook",
    "pending",
    "previous",
    "recycle_now",
    "request",
]

_CLIENT_CLASSES = ("BaseLambdaRuntimeClient", "LambdaRuntimeClient")

# What an orderly exit may take (atexit callbacks, thread joins, finalisers): the next event
# waits meanwhile. A telemetry flush takes tens of milliseconds; one that hangs is cut here.
EXIT_BUDGET_S = 2

_reasons: list[str] = []


def allowed() -> bool:
    """Lambda Managed Instances do not respawn workers: report there, never exit."""
    return not os.environ.get(LAMBDA_MAX_CONCURRENCY)


_use: list[int | None] = []  # invocations served, fds and RSS when the recycle was asked for


def request(
    reasons: list[str], invocations: int = 0, fds: int | None = None, rss: int | None = None
) -> None:
    if not _reasons:
        _reasons.extend(reasons)
        _use[:] = [invocations, fds, rss]


def previous() -> PastRecycle | None:
    """What the previous generation used when it was recycled (the wrapper keeps its marker
    as ``<marker>.last``), for the back-off; None for the first generation."""
    marker = os.environ.get(RECYCLE_MARKER)
    if not marker:
        return None
    try:
        with open(f"{marker}.last", encoding="ascii") as last:
            fields = last.read().split()
        served, fds, rss = (None if f == "-" else int(f) for f in fields[:3])
    except (OSError, ValueError):
        return None  # none yet, or unreadable: no back-off
    return PastRecycle(served or 0, fds, rss)


def pending() -> bool:
    return bool(_reasons)


def _warning(message: str, *args: object) -> None:
    import logging  # 4 ms of cold start: loaded when there is something to say

    logging.getLogger(LOGGER_NAME).warning(message, *args)


def recycle_now() -> None:  # pragma: no cover - ends the process; tested end to end
    marker = os.environ.get(RECYCLE_MARKER)
    _warning(
        "safehandler: recycling the environment (%s): %s",
        "restarting the runtime" if marker else "exiting; Lambda starts a new one",
        redact_text("; ".join(_reasons)),
    )
    _fleet.before_recycle(_reasons)  # the fleet view's last line, before the flush
    if marker:
        _mark(marker)
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # exiting anyway
            stream.flush()
    # SIG_DFL: the kernel ends the process when the budget is spent, whatever Python is doing
    with suppress(Exception):  # exiting anyway
        import signal  # 1.5 ms of cold start (its enums): loaded only here

        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(EXIT_BUDGET_S)
    raise SystemExit(0)  # out of awslambdaric's loop: atexit, finalisers, flushed files


def _mark(marker: str) -> None:
    """Create the wrapper's marker, holding the use that asked for the recycle (read back
    by the next generation): never through a symlink, never over another file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    record = " ".join("-" if v is None else str(v) for v in _use or [0, None, None])
    try:
        fd = os.open(marker, flags, 0o600)
        try:
            os.write(fd, f"{record}\n".encode("ascii"))
        finally:
            os.close(fd)
    except FileExistsError:
        pass  # marked already
    except OSError as exc:  # the wrapper will pass the exit on: Lambda starts a new runtime
        _warning("safehandler: cannot tell the wrapper to restart the runtime: %r", exc)


def install_hook() -> None:
    """Recycle between invocations once awslambdaric runs (now, or when it is imported)."""
    if os.environ.get(LAMBDA_RUNTIME_API):
        when_imported("awslambdaric.lambda_runtime_client", _patch_client)


def _patch_client(module: ModuleType) -> None:
    cls = next((getattr(module, n) for n in _CLIENT_CLASSES if hasattr(module, n)), None)
    wait = getattr(cls, "wait_next_invocation", None)
    if cls is None or wait is None:
        _warning(
            "safehandler: this awslambdaric has no runtime client class we know; "
            "unhealthy environments are reported, not recycled"
        )
        return
    if getattr(wait, "__safehandler__", False):
        return

    @functools.wraps(wait)
    def wait_next_invocation(self: Any) -> Any:
        # The previous response has been posted: the only safe moment to go.
        if pending() and allowed():
            recycle_now()
        return wait(self)

    wait_next_invocation.__safehandler__ = True  # type: ignore[attr-defined]
    cls.wait_next_invocation = wait_next_invocation
