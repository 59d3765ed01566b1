"""``sys.path``: read, diff and restore (the list object itself, and its entries)."""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from typing import Any

from ..._records import PATH_ENTRY, Resource, global_change
from .. import _rotation
from .._describe import describe

__all__ = ["diff_path", "read_path", "restore_path"]

Wanted = Callable[[tuple[str, str]], bool]


def read_path() -> list[Any]:
    """What the rotation compares."""
    return _rotation.referents(sys.path)


def diff_path(was: tuple[str, ...], now: tuple[str, ...], invocation: int) -> list[Resource]:
    out: list[Resource] = []
    gained = collections.Counter(now) - collections.Counter(was)
    lost = collections.Counter(was) - collections.Counter(now)
    for verb, entries in (("added", gained), ("removed", lost)):
        for entry, count in entries.items():
            detail = f"{describe(entry)} {verb}"
            res = global_change(PATH_ENTRY, (PATH_ENTRY, str(entry)), detail, invocation)
            out += [res] * count
    if not out and was != now:
        out.append(global_change(PATH_ENTRY, (PATH_ENTRY, ""), "reordered", invocation))
    return out


def restore_path(original: list[str], entries: tuple[str, ...], wanted: Wanted) -> list[str]:
    current = sys.path
    if current is original and tuple(current) == entries:
        return []
    changed = set(current).symmetric_difference(entries) or {""}
    if not any(wanted((PATH_ENTRY, str(entry))) for entry in changed):
        return []
    sys.path = original
    original[:] = entries
    return ["sys.path"]
