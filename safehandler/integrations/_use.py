"""Which invocation last used a driver object: a connection used again is a cache, not a leak.

The integrations register each handle's object here and call ``used(obj)`` from the driver's
own hot spot (PyMySQL's command path, SQLAlchemy's cursor events). That costs a dictionary
lookup per command, and lets the leak cleanup tell a bounded cache, whose connections come
back, from a leak, whose connections are never touched again.
"""

from __future__ import annotations

import weakref

from .._records import Handle
from .._scope import current, reporting_fault

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["track", "used"]

_handles: weakref.WeakKeyDictionary[Any, Handle] = weakref.WeakKeyDictionary()


def track(obj: Any, handle: Handle) -> None:
    """From now on, uses of ``obj`` are told to ``handle``."""
    try:
        _handles[obj] = handle
        handle.tracks_use = True
    except TypeError:  # not weakly referenceable: its use cannot be told
        pass


def used(obj: Any) -> None:
    """``obj`` runs a command now: the running invocation uses it."""
    try:
        handle = _handles.get(obj)
        if handle is None:
            return
        scope = current()
        if scope is not None:
            handle.last_used = scope.serial
    except Exception as exc:  # noqa: BLE001 - the driver's command must go on
        reporting_fault("driver use", exc)
