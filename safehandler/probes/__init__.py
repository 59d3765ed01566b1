"""One probe per resource. Each has a cheap ``snapshot()`` and a ``diff()`` paid only on change.

``snapshot()`` runs before and after every invocation and must cost a counter read.
``start()`` takes the snapshot before an invocation, to catch up with changes made between
invocations (those belong to no invocation).
``diff()`` runs after an invocation in which that counter moved or a creation was recorded;
it returns the resources that appeared (still open at the end) and those that went away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from ..report import Resource
from ..sites import Creation

__all__ = ["Delta", "Probe"]


class Delta(NamedTuple):
    added: list[Resource]
    removed: list[Resource]


NO_CHANGE = Delta([], [])


class Probe(Protocol):
    name: str
    counts_before: bool  # whether a snapshot before the invocation is needed at all

    @property
    def holding(self) -> bool:
        """Holds resources that may go away unseen: diff() runs on every invocation."""
        ...

    def snapshot(self) -> Any: ...

    def start(self, count: Any) -> list[Resource]:
        """Before an invocation: resources that went away since the last one."""
        ...

    def diff(
        self, before: Any, after: Any, creations: Sequence[Creation], invocation: int
    ) -> Delta: ...
