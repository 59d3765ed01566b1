"""The Python-level signal handlers: read, diff and restore (restore: main thread only)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..._records import SIGNAL_HANDLER, Resource, global_change
from .._describe import describe_signal, signal_name

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["catchable_signals", "diff_signals", "read_signals", "restore_signals"]

Wanted = Callable[[tuple[str, str]], bool]

# The C function: signal.getsignal wraps it in Python to return enums. From the C module,
# loaded at start-up: importing signal costs 1.5 ms of cold start (its enums).
try:
    import _signal  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - a Python without it
    import signal as _signal
_getsignal: Callable[[int], Any] = _signal.getsignal


def catchable_signals() -> tuple[int, ...]:
    # the C module's ints: signal's own would be enums, which need enum loaded
    try:
        valid = _signal.valid_signals()
    except (AttributeError, ValueError, OSError):
        return ()
    uncatchable = {getattr(_signal, name, None) for name in ("SIGKILL", "SIGSTOP")}
    realtime = getattr(_signal, "SIGRTMIN", None)
    return tuple(
        sorted(
            int(sig)
            for sig in valid
            if sig not in uncatchable and (realtime is None or sig < realtime)
        )
    )


def read_signals(signals: tuple[int, ...]) -> tuple[Any, ...]:
    return tuple(map(_getsignal, signals))


def diff_signals(
    signals: tuple[int, ...], was: tuple[Any, ...], now: tuple[Any, ...], invocation: int
) -> list[Resource]:
    out: list[Resource] = []
    for sig, old, new in zip(signals, was, now, strict=True):
        if old is new or old == new:
            continue
        name = signal_name(sig)
        detail = f"{name} replaced: {describe_signal(old)} -> {describe_signal(new)}"
        out.append(global_change(SIGNAL_HANDLER, (SIGNAL_HANDLER, name), detail, invocation))
    return out


def restore_signals(signals: tuple[int, ...], was: tuple[Any, ...], wanted: Wanted) -> list[str]:
    if threading.current_thread() is not threading.main_thread():
        return []  # signal.signal() works in the main thread only
    import signal

    done: list[str] = []
    for sig, handler in zip(signals, was, strict=True):
        name = signal_name(sig)
        if handler is None or _getsignal(sig) == handler:
            continue
        if wanted((SIGNAL_HANDLER, name)):
            signal.signal(sig, handler)
            done.append(f"signal handler {name}")
    return done
