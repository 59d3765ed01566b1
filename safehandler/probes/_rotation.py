"""Checking a large state a slice at a time.

The state is a set of containers (read together by one ``gc.get_referents`` call) and of
readers (calls that return a value: a system call, a lookup by name). ``deal()`` shares them
out into ``every`` slices of about equal cost, the largest first, each to the lightest slice
so far. ``turn()`` names the slice the next check reads, in turn, so each slice comes round
once in ``every`` checks.

A change in a slice is seen within ``every`` checks of being made, for a fraction of the cost
of reading everything: the caller decides what a late sighting means.
"""

from __future__ import annotations

import gc
import operator
from collections.abc import Callable, Hashable, Iterable

TYPE_CHECKING = False  # typing's, without importing typing: mypy knows the name
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from .._tuple import NamedTuple

__all__ = ["Rotation", "referents"]


def _py_referents(*objs: Any) -> list[Any]:
    out: list[Any] = []
    for obj in objs:
        if isinstance(obj, dict):
            out += obj.values()
            out += obj
        else:
            out += obj
    return out


def _gc_referents_work() -> bool:
    # CPython visits a dict's values (and its keys unless all are strings) and a list's
    # items. Elsewhere, use the plain version.
    marker = object()
    try:
        return all(
            gc.get_referents(container).count(marker) == 1
            for container in ({"k": marker}, {b"k": marker}, [marker])
        )
    except Exception:  # noqa: BLE001 - any surprise means: do not rely on it
        return False


# The values of dicts and lists, in one loop in C.
referents: Callable[..., list[Any]] = gc.get_referents if _gc_referents_work() else _py_referents


class Slice(NamedTuple):
    """A share of the state, checked on its turn."""

    sources: tuple[Any, ...]  # dicts and lists, read in one referents() call
    readers: tuple[Callable[[], Any], ...]  # live reads: a system call, a lookup by name

    def read(self) -> tuple[Any, ...]:
        return (referents(*self.sources), *[read() for read in self.readers])


class Rotation:
    """The state dealt into slices, and whose turn it is."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.slices: tuple[Slice, ...] = ()
        self._dealt_for: Hashable = None  # what the state looked like when it was dealt
        self._checks = 0

    def deal(
        self,
        layout: Hashable,
        sources: Iterable[Any],
        readers: Iterable[tuple[int, Callable[[], Any]]],
    ) -> bool:
        """Share the state out anew, unless ``layout`` (what identifies the sources and
        readers) is what it was; say whether it did. A source costs its length; a reader says
        its cost in the same unit (a container entry, about 5 ns)."""
        if layout == self._dealt_for and self.slices:
            return False
        items: list[tuple[int, Any, Callable[[], Any] | None]] = [
            (len(source), source, None) for source in sources
        ]
        items += [(cost, None, reader) for cost, reader in readers]
        items.sort(key=operator.itemgetter(0), reverse=True)
        count = max(1, min(self.every, len(items)))
        loads = [0] * count
        dealt: list[tuple[list[Any], list[Callable[[], Any]]]] = [([], []) for _ in range(count)]
        for cost, source, reader in items:
            lightest = loads.index(min(loads))
            loads[lightest] += cost
            if reader is None:
                dealt[lightest][0].append(source)
            else:
                dealt[lightest][1].append(reader)
        self.slices = tuple(Slice(tuple(s), tuple(r)) for s, r in dealt)
        self._dealt_for = layout
        return True

    def read_all(self) -> tuple[Any, ...]:
        """Every slice's read: what later checks compare with."""
        return tuple(part.read() for part in self.slices)

    def unchanged(self, reads: tuple[Any, ...]) -> bool:
        """Read the slice whose turn it is; whether it still reads as in ``reads``."""
        self._checks += 1
        sources, readers = self.slices[self._checks % len(self.slices)]
        was = reads[self._checks % len(self.slices)]
        # Slice.read() inlined (this runs on every invocation): the containers first, then
        # each reader, stopping at the first difference
        if referents(*sources) != was[0]:
            return False
        for index, read in enumerate(readers, 1):  # noqa: SIM110 - no generator frame per call
            if read() != was[index]:
                return False
        return True
