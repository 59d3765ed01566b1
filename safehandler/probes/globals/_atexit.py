"""Exit callbacks: counted (``atexit`` cannot list them, nor can they be undone portably)."""

from __future__ import annotations

import atexit
from collections.abc import Callable

from ..._records import ATEXIT_CALLBACK, Resource, global_change

__all__ = ["diff_atexit", "ncallbacks"]

ncallbacks: Callable[[], int | None] = getattr(atexit, "_ncallbacks", lambda: None)


def diff_atexit(was: int | None, now: int | None, invocation: int) -> list[Resource]:
    if was is None or now is None:
        return []
    detail = "registered during the invocation (atexit cannot be undone)"
    return [
        global_change(ATEXIT_CALLBACK, (ATEXIT_CALLBACK, ""), detail, invocation)
        for _ in range(now - was)
    ]
