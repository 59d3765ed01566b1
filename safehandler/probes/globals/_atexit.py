"""Exit callbacks: counted (``atexit`` cannot list them, nor can they be undone portably),
and told by the registrations the scope's ``atexit.register`` wrapper saw: the callback's
name and the line that registered it. A library's own registration (the first
``weakref.finalize`` of a process registers one) is not the handler's doing: no finding."""

from __future__ import annotations

import atexit
import functools
import types
from collections.abc import Callable, Sequence

from ..._records import ATEXIT_CALLBACK, Creation, Resource, global_change

__all__ = ["diff_atexit", "ncallbacks"]

ncallbacks: Callable[[], int | None] = getattr(atexit, "_ncallbacks", lambda: None)

_DETAIL = "registered during the invocation (atexit cannot be undone)"


def diff_atexit(
    was: int | None, now: int | None, invocation: int, seen: Sequence[Creation] = ()
) -> list[Resource]:
    """The callbacks registered since ``was``; ``seen``: the registrations recorded meanwhile,
    oldest first."""
    if was is None or now is None or now <= was:
        return []
    grew = now - was
    told = [c for c in seen if c.detail != "library"][-grew:]
    unseen = grew - len(told) - sum(c.detail == "library" for c in seen)
    return [_told(creation, invocation) for creation in told] + [
        global_change(ATEXIT_CALLBACK, (ATEXIT_CALLBACK, ""), _DETAIL, invocation)
        for _ in range(max(unseen, 0))
    ]


def _told(creation: Creation, invocation: int) -> Resource:
    site = creation.site
    key = (ATEXIT_CALLBACK, site.location if site is not None else "")
    return global_change(ATEXIT_CALLBACK, key, f"{_name(creation.ref)} {_DETAIL}", invocation, site)


def _name(func: object) -> str:
    """The callback's name, read without running any of the user's code."""
    if isinstance(func, functools.partial):
        return f"partial({_name(func.func)})"
    if isinstance(func, types.MethodType):
        func = func.__func__
    if isinstance(func, (types.FunctionType, types.BuiltinFunctionType)):
        return func.__qualname__
    return f"a {type(func).__qualname__} object"
