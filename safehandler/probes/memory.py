"""Resident memory after each invocation, read cheaply.

RSS is read from ``/proc/self/statm`` through a descriptor opened once (a ``pread`` costs about
a microsecond, psutil about ten). The limit it is judged against is the health module's.
"""

from __future__ import annotations

import os

from .._records import NO_CHANGE, Delta
from .._scope import Scope
from ._protocol import Probe

__all__ = ["MemoryProbe", "rss"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryProbe(Probe):
    name = "memory"
    stat = "rss"
    counts_before = False  # judged on the RSS after each invocation (verdicts.MemoryTrend)

    def __init__(self) -> None:
        rss()  # opens the statm descriptor now, at init, where it is baseline

    def snapshot(self) -> int:
        """Resident set size in bytes."""
        return rss()

    def diff(self, before: int | None, after: int, scope: Scope, invocation: int) -> Delta:
        return NO_CHANGE  # memory is judged as a trend (verdicts.MemoryTrend), not per resource


_statm: int | None = None  # one descriptor for the process, opened on first use


def rss() -> int:
    """Resident set size in bytes: one pread of /proc/self/statm, or psutil without /proc."""
    global _statm  # noqa: PLW0603 - shared by every guard, opened once
    if _statm is None:
        try:
            _statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            import psutil

            return int(psutil.Process().memory_info().rss)
    return int(os.pread(_statm, 128, 0).split()[1]) * _PAGE


def _forget_parents_statm() -> None:
    # "self" was resolved when the descriptor was opened: in a forked child it is the parent
    global _statm  # noqa: PLW0603 - shared by every guard, opened once
    if _statm is not None:
        os.close(_statm)
        _statm = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_statm)
