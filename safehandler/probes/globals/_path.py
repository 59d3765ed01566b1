"""``sys.path``: read, diff and restore (the list object itself, and its entries)."""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable

from ..._records import PATH_ENTRY, Resource, global_change
from .. import _rotation
from .._describe import describe
from ._token import new_name_change

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any

__all__ = ["diff_path", "read_path", "restore_path"]

Wanted = Callable[[tuple[str, str]], bool]


def read_path() -> list[Any]:
    """What the rotation compares."""
    return _rotation.referents(sys.path)


def diff_path(was: tuple[str, ...], now: tuple[str, ...], invocation: int) -> list[Resource]:
    out: list[Resource] = []
    gained = collections.Counter(now) - collections.Counter(was)
    lost = collections.Counter(was) - collections.Counter(now)
    for entry, count in gained.items():
        # an entry per invocation is one growing group, whatever the entries are
        res = new_name_change(
            PATH_ENTRY, (PATH_ENTRY, str(entry)), f"{describe(entry)} added", invocation
        )
        out += [res] * count
    for entry, count in lost.items():
        detail = f"{describe(entry)} removed"
        out += [global_change(PATH_ENTRY, (PATH_ENTRY, str(entry)), detail, invocation)] * count
    if not out and was != now:
        out.append(global_change(PATH_ENTRY, (PATH_ENTRY, ""), "reordered", invocation))
    return out


def restore_path(original: list[str], entries: tuple[str, ...], wanted: Wanted) -> list[str]:
    """The list itself, if it was replaced; then only the entries the invocation added are
    taken out again (the latest occurrences), removals and order left as they are."""
    done: list[str] = []
    current = sys.path
    if current is not original and wanted((PATH_ENTRY, "")):
        sys.path = original
        done.append("sys.path (the list)")
        return done
    gained = collections.Counter(current) - collections.Counter(entries)
    for entry, count in gained.items():
        if not wanted((PATH_ENTRY, str(entry))):
            continue
        for _ in range(count):
            index = len(current) - 1 - current[::-1].index(entry)
            del current[index]
        done.append(f"sys.path entry {describe(entry)}")
    return done
