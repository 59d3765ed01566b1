"""The allow-list by object: ``allow_global`` marks an intended cache.

(The allow-list by name, ``allow=["app.CACHE"]``, is the probe's: a pattern per probe.)
"""

from __future__ import annotations

import functools
import weakref
from types import FunctionType

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _T = TypeVar("_T")

__all__ = ["allow_global", "is_allowed", "ours"]

# id -> a weak reference to the object, or a 1-tuple holding it: dicts, lists and sets cannot
# be weakly referenced, so those are kept alive, which keeps their id from being reused (an
# intended cache lives as long as the process anyway).
_allowed: dict[int, Any] = {}


def allow_global(obj: _T) -> _T:
    """Mark ``obj`` as an intended cache and return it: ``CACHE = allow_global({})``.

    Its mutation is not reported, and ``restore()`` leaves it alone; growth in every one of
    ten consecutive invocations still is (an unbounded cache).
    """
    key = id(obj)
    try:
        _allowed[key] = weakref.ref(obj, functools.partial(_forget, key))
    except TypeError:
        _allowed[key] = (obj,)
    return obj


def _forget(key: int, ref: object) -> None:
    if _allowed.get(key) is ref:
        _allowed.pop(key, None)


def is_allowed(obj: object) -> bool:
    entry = _allowed.get(id(obj))
    if entry is None:
        return False
    if type(entry) is tuple:
        return entry[0] is obj
    return bool(entry() is obj)


def ours(value: object) -> bool:
    """safehandler's own deliberate wrappers (``__safehandler__`` set on the function) are not
    changes. They are all plain functions: the flag is read from the function's own dict, so
    no user ``__getattr__`` or property runs."""
    return type(value) is FunctionType and bool(value.__dict__.get("__safehandler__", False))
